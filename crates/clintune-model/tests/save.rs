//! Saving: weights and PEFT adapters written by clintune read back to the
//! same model, with the names, shapes and header PEFT and transformers use.

mod common;

use clintune_model::save::{SaveDtype, write_safetensors};
use clintune_model::{Llama, ModelConfig, WeightFiles, peft};
use common::{B, fixture, load, logits, max_abs_diff, model};
use std::collections::BTreeMap;

fn rows() -> Vec<Vec<u32>> {
    let (_, golden) = load("qwen2-bias");
    common::ids(&golden["inputs"]["input_ids_batch"])
}

#[test]
fn saved_weights_load_back_to_the_same_logits() {
    let source: Llama<B> = model("qwen2-bias");
    let want = logits(&source, &rows());
    for (dtype, tolerance) in [(SaveDtype::F32, 0.0), (SaveDtype::Bf16, 5e-2)] {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::copy(
            fixture("qwen2-bias/config.json"),
            tmp.path().join("config.json"),
        )
        .unwrap();
        let path = tmp.path().join("model.safetensors");
        let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
        write_safetensors(&path, source.weight_entries(), dtype, &meta).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(header.metadata().as_ref().unwrap()["format"], "pt");
        let config = ModelConfig::load(tmp.path()).unwrap();
        let again: Llama<B> = Llama::load(
            &config,
            &WeightFiles::open(tmp.path()).unwrap(),
            &Default::default(),
        )
        .unwrap();
        let diff = max_abs_diff(&logits(&again, &rows()), &want);
        assert!(diff <= tolerance, "{dtype:?}: {diff}");
        assert!(!tmp.path().join("model.safetensors.partial").exists());
    }
}

#[test]
fn a_saved_adapter_has_pefts_names_and_shapes_and_loads_back() {
    let golden_dir = fixture("lora-peft");
    let adapted: Llama<B> = model::<B>("llama-gqa-rope3")
        .with_peft_adapter(&golden_dir)
        .unwrap();
    let cfg = peft::read_config(&golden_dir).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    adapted
        .save_peft_adapter(tmp.path(), &cfg, "../llama-gqa-rope3")
        .unwrap();
    let shapes = |dir: &std::path::Path| -> BTreeMap<String, Vec<usize>> {
        let files = WeightFiles::open_file(&dir.join(peft::WEIGHTS_FILE)).unwrap();
        files
            .names()
            .map(|n| (n.to_string(), files.get(n).unwrap().shape.clone()))
            .collect()
    };
    assert_eq!(shapes(tmp.path()), shapes(&golden_dir));
    assert_eq!(peft::read_config(tmp.path()).unwrap(), cfg);
    let reloaded: Llama<B> = model::<B>("llama-gqa-rope3")
        .with_peft_adapter(tmp.path())
        .unwrap();
    assert_eq!(
        max_abs_diff(&logits(&reloaded, &rows()), &logits(&adapted, &rows())),
        0.0
    );
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join(peft::CONFIG_FILE)).unwrap())
            .unwrap();
    let theirs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(golden_dir.join(peft::CONFIG_FILE)).unwrap())
            .unwrap();
    for key in [
        "peft_type",
        "r",
        "target_modules",
        "bias",
        "use_rslora",
        "use_dora",
    ] {
        assert_eq!(written[key], theirs[key], "{key}");
    }
}
