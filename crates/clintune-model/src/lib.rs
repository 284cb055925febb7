//! Llama-family foundation models, as Hugging Face stores them.
//!
//! A partner brings a model directory (`config.json`, `model.safetensors` or
//! shards with `model.safetensors.index.json`, tokenizer files). [`config`]
//! reads the architecture from `config.json` and refuses what clintune does
//! not implement, by name; [`weights`] reads tensors one at a time from the
//! safetensors files and checks them against what the config implies,
//! reporting every missing, unexpected or mis-shaped tensor at once.

pub mod config;
pub mod device;
pub mod faults;
mod fused;
pub mod generate;
pub mod init;
pub mod llama;
pub mod lora;
pub mod loss;
pub mod peft;
pub mod rope;
pub mod save;
pub mod weights;

pub use config::{ModelConfig, RopeScaling};
pub use device::{Device, DeviceError, OnDevice, on_device};
pub use generate::{GenerateConfig, Generation, Sampling, StopReason};
pub use llama::{Batch, Llama};
pub use lora::{LoraConfig, Target};

/// The CPU backend clintune runs on by default.
pub type Cpu = burn::backend::Flex;

/// NVIDIA GPUs through burn's CUDA backend, f32 storage (bf16 is chosen per
/// device at run time).
#[cfg(feature = "cuda")]
pub type Cuda = burn::backend::Cuda<f32, i32>;
pub use fused::{AdamWInputs, AdamWStep, adamw_step, reseed_dropout};
pub use weights::{Dtype, TensorInfo, WeightFiles, WeightsError};
