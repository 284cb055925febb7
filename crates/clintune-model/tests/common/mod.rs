//! Helpers shared by the model crate's tests: the reference fixtures of
//! `tests/fixtures/llama` and their golden tensors.

#![allow(dead_code)]

use burn::backend::Flex;
use burn::prelude::Backend;
use clintune_model::{Batch, Llama, ModelConfig, WeightFiles};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The backend the tests run on.
pub type B = Flex;

/// A reference model directory.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/llama")
        .join(name)
}

/// A golden tensor (of `golden.safetensors`) as f32 values, with its shape.
pub fn golden_tensor(dir: &Path, name: &str) -> (Vec<f32>, Vec<usize>) {
    f32_tensor(&dir.join("golden.safetensors"), name)
}

/// Tensor `name` of the f32 safetensors file `path`, with its shape.
pub fn f32_tensor(path: &Path, name: &str) -> (Vec<f32>, Vec<usize>) {
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let view = file.tensor(name).unwrap();
    assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
    let values = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (values, view.shape().to_vec())
}

/// Token id rows from JSON.
pub fn ids(value: &Value) -> Vec<Vec<u32>> {
    serde_json::from_value(value.clone()).unwrap()
}

/// A reference model on any backend.
pub fn model<Bk: Backend>(name: &str) -> Llama<Bk> {
    let dir = fixture(name);
    let config = ModelConfig::load(&dir).unwrap();
    Llama::load(
        &config,
        &WeightFiles::open(&dir).unwrap(),
        &Default::default(),
    )
    .unwrap()
}

/// A reference model on the CPU, with its `golden.json`.
pub fn load(name: &str) -> (Llama<B>, Value) {
    let golden = std::fs::read_to_string(fixture(name).join("golden.json")).unwrap();
    (model(name), serde_json::from_str(&golden).unwrap())
}

/// Logits of `rows` as f32 values.
pub fn logits<Bk: Backend>(model: &Llama<Bk>, rows: &[Vec<u32>]) -> Vec<f32> {
    model
        .forward(&Batch::unpacked(rows))
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .unwrap()
}

/// The largest elementwise difference.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
