//! LoRA adapters: a fresh adapter leaves the model unchanged, a PEFT adapter
//! gives PEFT's logits (and, merged, PEFT's merged logits), only adapters
//! receive gradients, and PEFT options clintune cannot honour are refused.

mod common;

use burn::backend::{Autodiff, Flex};
use burn::tensor::activation::log_softmax;
use clintune_model::{Llama, LoraConfig, Target};
use common::{B, fixture, golden_tensor, ids, load, logits, max_abs_diff, model};
use std::path::Path;

fn batch() -> Vec<Vec<u32>> {
    let (_, golden) = load("llama-gqa-rope3");
    ids(&golden["inputs"]["input_ids_batch"])
}

fn all_targets(rank: usize) -> LoraConfig {
    LoraConfig {
        rank,
        alpha: 2.0 * rank as f64,
        dropout: 0.0,
        targets: Target::ALL.to_vec(),
    }
}

#[test]
fn a_fresh_adapter_leaves_the_logits_unchanged() {
    let rows = batch();
    let base: Llama<B> = model("llama-gqa-rope3");
    let want = logits(&base, &rows);
    let adapted = base.with_lora(&all_targets(4), 1);
    assert!(adapted.has_lora());
    assert_eq!(max_abs_diff(&logits(&adapted, &rows), &want), 0.0);
}

#[test]
fn a_peft_adapter_gives_peft_logits_merged_or_not() {
    let rows = batch();
    let dir = fixture("lora-peft");
    let base: Llama<B> = model("llama-gqa-rope3");
    let base_logits = logits(&base, &rows);
    let adapted = base.with_peft_adapter(&dir).unwrap();
    let ours = logits(&adapted, &rows);
    let (want, _) = golden_tensor(&dir, "logits_batch");
    let diff = max_abs_diff(&ours, &want);
    assert!(diff < 1e-4, "adapted logits differ from PEFT's by {diff}");
    // The adapter matters: PEFT's logits are not the base model's.
    assert!(max_abs_diff(&want, &base_logits) > 1e-2);

    let merged = adapted.merge_lora();
    assert!(!merged.has_lora());
    let merged_logits = logits(&merged, &rows);
    let (want_merged, _) = golden_tensor(&dir, "logits_merged");
    let diff = max_abs_diff(&merged_logits, &want_merged);
    assert!(diff < 1e-4, "merged logits differ from PEFT's by {diff}");
    let diff = max_abs_diff(&merged_logits, &ours);
    assert!(diff < 1e-5, "merged and unmerged differ by {diff}");
}

#[test]
fn only_adapters_receive_gradients() {
    type Ad = Autodiff<Flex>;
    let rows = batch();
    let cfg = LoraConfig {
        targets: vec![Target::Q, Target::Down],
        ..all_targets(2)
    };
    let model: Llama<Ad> = model::<Ad>("llama-gqa-rope3").with_lora(&cfg, 5);
    let out = model.forward(&clintune_model::Batch::unpacked(&rows));
    let loss = log_softmax(out, 2).mean().neg();
    let grads = loss.backward();
    for layer in 0..2 {
        for target in Target::ALL {
            let linear = model.linear(layer, target);
            assert!(linear.weight.val().grad(&grads).is_none(), "{target} base");
            match (&linear.lora, cfg.targets.contains(&target)) {
                (Some(lora), true) => {
                    let g = lora.b.val().grad(&grads).expect("B has a gradient");
                    assert!(g.abs().max().into_scalar() > 0.0, "{target}: zero gradient");
                    assert!(lora.a.val().grad(&grads).is_some());
                }
                (None, false) => {}
                (lora, wanted) => panic!("{target}: adapter {} wanted {wanted}", lora.is_some()),
            }
        }
    }
    let embed = &model.model.embed_tokens.weight;
    assert!(embed.val().grad(&grads).is_none());
}

#[test]
fn adapters_are_seeded_by_place() {
    let cfg = all_targets(2);
    let a = |m: &Llama<B>, l: usize, t: Target| {
        let lora = m.linear(l, t).lora.as_ref().unwrap();
        lora.a.val().into_data().to_vec::<f32>().unwrap()
    };
    let one: Llama<B> = model::<B>("tied").with_lora(&cfg, 9);
    let two: Llama<B> = model::<B>("tied").with_lora(&cfg, 9);
    let other: Llama<B> = model::<B>("tied").with_lora(&cfg, 10);
    assert_eq!(a(&one, 1, Target::V), a(&two, 1, Target::V));
    assert_ne!(a(&one, 1, Target::V), a(&other, 1, Target::V));
    assert_ne!(a(&one, 0, Target::V), a(&one, 1, Target::V));
    let bound = 1.0 / 64f32.sqrt();
    assert!(a(&one, 0, Target::Q).iter().all(|x| x.abs() <= bound));
}

fn copy_adapter(to: &Path) {
    for f in ["adapter_config.json", "adapter_model.safetensors"] {
        std::fs::copy(fixture("lora-peft").join(f), to.join(f)).unwrap();
    }
}

fn edit_config(dir: &Path, key: &str, value: serde_json::Value) {
    let path = dir.join("adapter_config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    cfg[key] = value;
    std::fs::write(&path, cfg.to_string()).unwrap();
}

#[test]
fn peft_options_that_change_the_computation_are_refused_by_name() {
    for (key, value) in [
        ("use_dora", serde_json::json!(true)),
        ("use_rslora", serde_json::json!(true)),
        ("bias", serde_json::json!("all")),
        ("rank_pattern", serde_json::json!({"q_proj": 8})),
        ("target_modules", serde_json::json!("q_proj|v_proj")),
        (
            "target_modules",
            serde_json::json!(["q_proj", "embed_tokens"]),
        ),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        copy_adapter(tmp.path());
        edit_config(tmp.path(), key, value);
        let err = model::<B>("llama-gqa-rope3")
            .with_peft_adapter(tmp.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("adapter_config.json"), "{err}");
        assert!(
            err.contains(key) || err.contains("embed_tokens"),
            "{key}: {err}"
        );
    }
}

#[test]
fn an_adapter_for_another_shape_is_refused_with_every_tensor_named() {
    let tmp = tempfile::tempdir().unwrap();
    copy_adapter(tmp.path());
    edit_config(tmp.path(), "r", serde_json::json!(8));
    let err = model::<B>("llama-gqa-rope3")
        .with_peft_adapter(tmp.path())
        .unwrap_err()
        .to_string();
    // 2 layers × 7 targets × (A, B), each with the wrong shape.
    assert_eq!(err.matches("shape [").count(), 28, "{err}");
    assert!(
        err.contains("layers.1.mlp.down_proj.lora_B.weight"),
        "{err}"
    );
}
