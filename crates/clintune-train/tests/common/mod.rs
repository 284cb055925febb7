//! What the golden tests share: the fixtures folder, the fixture Llama with
//! its PEFT adapter, and safetensors files read back.

use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::AutodiffBackend;
use clintune_model::lora::Target;
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

/// Checks the gradient of every adapter matrix of `model` (2 layers, all
/// targets) in `grads` against `golden`'s `{prefix}/{layer}.{module}.lora_A`
/// and `.lora_B`, within 1e-5 of each matrix's largest value.
pub fn assert_lora_grads(
    model: &Llama<Ad>,
    grads: &<Ad as AutodiffBackend>::Gradients,
    golden: &HashMap<String, Vec<f32>>,
    prefix: &str,
) {
    let mut compared = 0;
    for layer in 0..2 {
        for target in Target::ALL {
            let lora = model.linear(layer, target).lora.as_ref().unwrap();
            for (matrix, param) in [("lora_A", &lora.a), ("lora_B", &lora.b)] {
                let ours: Vec<f32> = param
                    .val()
                    .grad(grads)
                    .unwrap()
                    .into_data()
                    .iter::<f32>()
                    .collect();
                let key = format!("{prefix}/{layer}.{}.{matrix}", target.module_name());
                let theirs = &golden[&key];
                let scale = theirs.iter().fold(0f32, |m, x| m.max(x.abs()));
                let diff = ours
                    .iter()
                    .zip(theirs)
                    .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                assert_eq!(ours.len(), theirs.len(), "{key}");
                assert!(scale > 0.0, "{key}: a zero gradient tests nothing");
                assert!(
                    diff < 1e-5 * scale.max(1.0),
                    "{key}: differs by {diff} (scale {scale})"
                );
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 28);
}
