//! A committed clintune export (`tests/fixtures/export/tiny-lora`, bf16, LoRA
//! merged, adapter in PEFT's format) gives the logits transformers and PEFT
//! computed from the same files (`make_golden.py` beside it).

use clintune_model::{Batch, Cpu, Llama, ModelConfig, WeightFiles};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn load(dir: &Path) -> Llama<Cpu> {
    let config = ModelConfig::load(dir).unwrap();
    Llama::load(
        &config,
        &WeightFiles::open(dir).unwrap(),
        &Default::default(),
    )
    .unwrap()
}

fn golden(name: &str) -> (Vec<f32>, Vec<Vec<u32>>) {
    let bytes = std::fs::read(fixtures().join("export/golden.safetensors")).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let ids = serde_json::from_str(&meta.metadata().as_ref().unwrap()["ids"]).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let values = file
        .tensor(name)
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (values, ids)
}

fn max_diff(model: &Llama<Cpu>, ids: &[Vec<u32>], want: &[f32]) -> f32 {
    let got = model
        .forward(&Batch::unpacked(ids))
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
}

#[test]
fn transformers_loads_the_export_to_clintunes_logits() {
    let (want, ids) = golden("logits_merged");
    let diff = max_diff(&load(&fixtures().join("export/tiny-lora")), &ids, &want);
    assert!(diff < 1e-4, "merged export: {diff}");
}

#[test]
fn peft_loads_the_exported_adapter_to_clintunes_logits() {
    let (want, ids) = golden("logits_peft");
    let base = load(&fixtures().join("llama/llama-gqa-rope3"));
    let adapted = base
        .with_peft_adapter(&fixtures().join("export/tiny-lora/adapter"))
        .unwrap();
    let diff = max_diff(&adapted, &ids, &want);
    assert!(diff < 1e-4, "adapter: {diff}");
}
