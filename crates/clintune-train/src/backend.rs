//! From the devices a recipe names to the burn backend that runs on them:
//! burn-flex on the CPU, burn's CUDA backend (with the `cuda` feature) on
//! NVIDIA GPUs. Training and the throughput bench both start here, so the
//! choice, and the message when CUDA was not built in, live in one place.

use crate::error::TrainError;
use crate::recipe::Devices;
use burn::tensor::backend::AutodiffBackend;

/// Work that runs on whichever backend the devices call for.
pub trait OnBackend {
    /// What the work returns.
    type Output;

    /// Runs on backend `B`, on `devices` (one per data-parallel worker).
    fn run<B: AutodiffBackend>(self, devices: Vec<B::Device>) -> Self::Output;
}

/// Runs `work` on the backend and devices `devices` names.
pub fn on_backend<W: OnBackend>(devices: &Devices, work: W) -> Result<W::Output, TrainError> {
    match devices {
        Devices::Cpu(n) => {
            let devices = vec![Default::default(); *n];
            Ok(work.run::<burn::backend::Autodiff<clintune_model::Cpu>>(devices))
        }
        Devices::Cuda(ids) => on_cuda(ids, work),
    }
}

#[cfg(feature = "cuda")]
fn on_cuda<W: OnBackend>(ids: &[usize], work: W) -> Result<W::Output, TrainError> {
    clintune_model::faults::watch();
    let devices = ids
        .iter()
        .map(|&i| burn::backend::cuda::CudaDevice::new(i))
        .collect();
    Ok(work.run::<burn::backend::Autodiff<clintune_model::Cuda>>(devices))
}

#[cfg(not(feature = "cuda"))]
fn on_cuda<W: OnBackend>(_: &[usize], _: W) -> Result<W::Output, TrainError> {
    Err(TrainError::Unsupported(
        "CUDA devices were asked for, but this clintune was built without CUDA: \
         cargo build --release --features cuda"
            .into(),
    ))
}
