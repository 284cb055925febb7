//! What the golden tests share: the fixtures folder, the fixture Llama with
//! its PEFT adapter, and safetensors files read back.

use burn::backend::{Autodiff, Flex};
use clintune_model::{Llama, ModelConfig, WeightFiles};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub type Ad = Autodiff<Flex>;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// The tiny fixture Llama with the PEFT adapter `llama/lora-peft` (the
/// policy; without its adapters, the reference).
pub fn policy() -> Llama<Ad> {
    let dir = fixtures().join("llama/llama-gqa-rope3");
    let config = ModelConfig::load(&dir).unwrap();
    let weights = WeightFiles::open(&dir).unwrap();
    Llama::<Ad>::load(&config, &weights, &Default::default())
        .unwrap()
        .with_peft_adapter(&fixtures().join("llama/lora-peft"))
        .unwrap()
}

/// Every f32 tensor of a safetensors file under the fixtures, by name.
pub fn read_safetensors(name: &str) -> HashMap<String, Vec<f32>> {
    let bytes = std::fs::read(fixtures().join(name)).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, t)| {
            let values = t
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (name, values)
        })
        .collect()
}
