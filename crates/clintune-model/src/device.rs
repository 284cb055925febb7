//! Where a model runs for inference (`score`, `generate`): `cpu` or
//! `cuda:N`, and the burn backend that goes with it. Training, with its
//! data-parallel device lists, has its own choice in `clintune-train`.

use burn::tensor::backend::Backend;
use std::fmt;
use std::str::FromStr;

/// One device a model runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// burn-flex on the CPU.
    #[default]
    Cpu,
    /// The CUDA device with this index (a build with the `cuda` feature).
    Cuda(usize),
}

/// Why a device cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The text names no device.
    #[error("a device is \"cpu\" or \"cuda:N\" (e.g. \"cuda:0\"), got {0:?}")]
    Invalid(String),
    /// CUDA was asked for in a CPU-only build.
    #[error(
        "{0} was asked for, but this clintune was built without CUDA: \
         cargo build --release --features cuda"
    )]
    NotBuilt(Device),
    /// A kernel failed on the GPU while the work ran.
    #[error(transparent)]
    Failed(#[from] crate::faults::Fault),
}

impl FromStr for Device {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let spec = s.trim();
        if spec == "cpu" {
            return Ok(Device::Cpu);
        }
        spec.strip_prefix("cuda:")
            .and_then(|n| n.trim().parse().ok())
            .map(Device::Cuda)
            .ok_or_else(|| DeviceError::Invalid(s.to_string()))
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

/// Work that runs on whichever backend a [`Device`] calls for.
pub trait OnDevice {
    /// What the work returns.
    type Output;

    /// Runs on backend `B`, on `device`.
    fn run<B: Backend>(self, device: B::Device) -> Self::Output;
}

/// Runs `work` on the backend of `device`.
pub fn on_device<W: OnDevice>(device: Device, work: W) -> Result<W::Output, DeviceError> {
    match device {
        Device::Cpu => Ok(work.run::<crate::Cpu>(Default::default())),
        Device::Cuda(index) => on_cuda(index, work),
    }
}

#[cfg(feature = "cuda")]
fn on_cuda<W: OnDevice>(index: usize, work: W) -> Result<W::Output, DeviceError> {
    crate::faults::watch();
    let out = work.run::<crate::Cuda>(burn::backend::cuda::CudaDevice::new(index));
    // What was computed after a failed kernel is not to be trusted: the
    // command fails even if it printed.
    crate::faults::check()?;
    Ok(out)
}

#[cfg(not(feature = "cuda"))]
fn on_cuda<W: OnDevice>(index: usize, _: W) -> Result<W::Output, DeviceError> {
    Err(DeviceError::NotBuilt(Device::Cuda(index)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::ElementConversion;

    #[test]
    fn devices_parse_and_print_back() {
        for text in ["cpu", "cuda:0", "cuda:3"] {
            let d: Device = text.parse().unwrap();
            assert_eq!(d.to_string(), text);
        }
        assert_eq!(" cuda: 1 ".parse::<Device>().unwrap(), Device::Cuda(1));
        for bad in ["gpu", "cuda", "cuda:x", "cuda:0,1", "cpu:2"] {
            let err = bad.parse::<Device>().unwrap_err().to_string();
            assert!(err.contains("cuda:N") && err.contains(bad), "{err}");
        }
    }

    struct Sum;

    impl OnDevice for Sum {
        type Output = f32;

        fn run<B: Backend>(self, device: B::Device) -> f32 {
            let t = burn::tensor::Tensor::<B, 1>::from_floats([1.0, 2.0, 3.5], &device);
            t.sum().into_scalar().elem()
        }
    }

    #[test]
    fn work_runs_on_the_cpu_and_cuda_needs_the_feature() {
        assert_eq!(on_device(Device::Cpu, Sum).unwrap(), 6.5);
        #[cfg(not(feature = "cuda"))]
        assert!(matches!(
            on_device(Device::Cuda(0), Sum),
            Err(DeviceError::NotBuilt(Device::Cuda(0)))
        ));
    }
}
