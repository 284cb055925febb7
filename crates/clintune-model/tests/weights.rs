//! Configs and weights of the reference models in `tests/fixtures/llama`
//! (made by transformers; see that folder's README).

use clintune_model::config::ConfigError;
use clintune_model::{Dtype, ModelConfig, WeightFiles, WeightsError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/llama")
        .join(name)
}

const MODELS: [&str; 5] = [
    "llama-gqa-rope3",
    "llama-gqa-rope3-sharded",
    "llama-gqa-rope3-bf16",
    "qwen2-bias",
    "tied",
];

#[test]
fn every_reference_model_holds_exactly_what_its_config_implies() {
    for name in MODELS {
        let dir = fixture(name);
        let config = ModelConfig::load(&dir).unwrap_or_else(|e| panic!("{name}: {e}"));
        let weights = WeightFiles::open(&dir).unwrap_or_else(|e| panic!("{name}: {e}"));
        weights
            .check(&config.expected_tensors())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn configs_are_read_as_transformers_reads_them() {
    let llama = ModelConfig::load(&fixture("llama-gqa-rope3")).unwrap();
    assert_eq!(
        (
            llama.num_attention_heads,
            llama.num_key_value_heads,
            llama.head_dim
        ),
        (4, 2, 16)
    );
    assert_eq!(llama.rope_theta, 500_000.0);
    let scaling = llama.rope_scaling.unwrap();
    assert_eq!(
        (scaling.factor, scaling.original_max_position_embeddings),
        (8.0, 64)
    );
    assert!(!llama.attention_bias && !llama.tie_word_embeddings);
    assert_eq!(llama.eos_token_ids, [0]);
    // The classic layout (rope_theta + rope_scaling) reads the same.
    let text =
        std::fs::read_to_string(fixture("llama-gqa-rope3/config.legacy-rope-format.json")).unwrap();
    assert_eq!(ModelConfig::parse(&text).unwrap(), llama);

    let qwen = ModelConfig::load(&fixture("qwen2-bias")).unwrap();
    assert!(qwen.attention_bias, "qwen2 has q/k/v biases");
    assert_eq!(
        (qwen.head_dim, qwen.rope_theta, qwen.rope_scaling),
        (16, 1_000_000.0, None)
    );
    assert!(
        ModelConfig::load(&fixture("tied"))
            .unwrap()
            .tie_word_embeddings
    );
}

#[test]
fn shards_and_bf16_read_the_same_tensors() {
    let single = WeightFiles::open(&fixture("llama-gqa-rope3")).unwrap();
    let sharded = WeightFiles::open(&fixture("llama-gqa-rope3-sharded")).unwrap();
    let bf16 = WeightFiles::open(&fixture("llama-gqa-rope3-bf16")).unwrap();
    let files: std::collections::BTreeSet<_> = sharded
        .names()
        .map(|n| sharded.get(n).unwrap().file.clone())
        .collect();
    assert!(files.len() >= 2, "the fixture is sharded");
    assert_eq!(
        single.names().collect::<Vec<_>>(),
        sharded.names().collect::<Vec<_>>()
    );
    for name in single.names() {
        let want = single.read_f32(name).unwrap();
        assert_eq!(sharded.read_f32(name).unwrap(), want, "{name}");
        assert_eq!(bf16.get(name).unwrap().dtype, Dtype::BF16);
        let rounded: Vec<f32> = want
            .iter()
            .map(|&x| half::bf16::from_f32(x).to_f32())
            .collect();
        assert_eq!(bf16.read_f32(name).unwrap(), rounded, "{name}");
    }
}

/// Writes a safetensors file of f32 zeros with the given names and shapes.
fn write_model(dir: &Path, tensors: &[(String, Vec<usize>)]) {
    let data: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(n, s)| {
            (
                n.clone(),
                vec![0u8; 4 * s.iter().product::<usize>()],
                s.clone(),
            )
        })
        .collect();
    let views: HashMap<String, safetensors::tensor::TensorView<'_>> = data
        .iter()
        .map(|(n, b, s)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
}

#[test]
fn every_missing_unexpected_or_misshaped_tensor_is_named_at_once() {
    let config = ModelConfig::load(&fixture("tied")).unwrap();
    let mut tensors = config.expected_tensors();
    let missing = tensors.remove(3).0;
    tensors.push((
        "model.layers.0.self_attn.rotary_emb.inv_freq".into(),
        vec![8],
    ));
    let misshaped = tensors[4].0.clone();
    tensors[4].1 = vec![7, 7];
    let dir = tempfile::tempdir().unwrap();
    write_model(dir.path(), &tensors);
    let err = WeightFiles::open(dir.path())
        .unwrap()
        .check(&config.expected_tensors())
        .unwrap_err();
    let WeightsError::Mismatch {
        missing: m,
        unexpected: u,
        misshaped: s,
    } = &err
    else {
        panic!("{err}");
    };
    assert_eq!(m, std::slice::from_ref(&missing));
    assert_eq!(
        u,
        &["model.layers.0.self_attn.rotary_emb.inv_freq".to_string()]
    );
    assert_eq!(s.len(), 1);
    let text = err.to_string();
    assert!(
        text.contains(&missing) && text.contains(&misshaped) && text.contains("[7, 7]"),
        "{text}"
    );
}

#[test]
fn a_truncated_file_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("tied/model.safetensors")).unwrap();
    std::fs::write(
        dir.path().join("model.safetensors"),
        &bytes[..bytes.len() - 100],
    )
    .unwrap();
    let err = WeightFiles::open(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("model.safetensors") && err.contains("do not match"),
        "{err}"
    );
}

#[test]
fn unsupported_architectures_are_named() {
    let base = std::fs::read_to_string(fixture("llama-gqa-rope3/config.json")).unwrap();
    let edit = |key: &str, value: serde_json::Value| {
        let mut v: serde_json::Value = serde_json::from_str(&base).unwrap();
        v[key] = value;
        ModelConfig::parse(&v.to_string())
    };
    let cases = [
        (edit("model_type", "gpt2".into()), "model_type"),
        (edit("hidden_act", "gelu".into()), "hidden_act"),
        (
            edit(
                "rope_parameters",
                serde_json::json!({"rope_type": "yarn", "rope_theta": 1e4}),
            ),
            "rope_type = yarn",
        ),
        (edit("sliding_window", 4096.into()), "sliding_window"),
        (edit("num_key_value_heads", 3.into()), "num_key_value_heads"),
    ];
    for (result, key) in cases {
        let err = result.unwrap_err();
        assert!(matches!(err, ConfigError::Unsupported { .. }), "{err}");
        assert!(err.to_string().contains(key), "{err}");
    }
}
