//! DPO against the golden reference of `tests/fixtures/dpo/make_golden.py`
//! (TRL's losses and figures, PEFT's LoRA, transformers' Llama): the
//! policy's and reference's log-probabilities, each loss, TRL's figures and
//! the gradient of every adapter matrix in the first step.

mod common;

use clintune_curate::pairs::PairTokens;
use clintune_model::{Llama, ModelConfig, WeightFiles};
use clintune_train::objective::dpo::{Rows, pair_figures, pair_losses, sequence_logps};
use clintune_train::recipe::{DpoLoss, ObjectiveKind, ObjectiveSection};
use common::{Ad, assert_lora_grads, fixtures, policy, read_safetensors};
use serde_json::Value;

fn golden() -> Value {
    let text = std::fs::read_to_string(fixtures().join("dpo/golden.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn pairs(g: &Value) -> Vec<PairTokens> {
    let ids = |v: &Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    let bits = |v: &Value| ids(v).into_iter().map(|x| x as u8).collect();
    g["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, p)| PairTokens {
            example_id: format!("ex-{i}"),
            prompt: ids(&p["prompt"]),
            chosen: ids(&p["chosen"]),
            chosen_mask: bits(&p["chosen_mask"]),
            rejected: ids(&p["rejected"]),
            rejected_mask: bits(&p["rejected_mask"]),
        })
        .collect()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn dpo_matches_trl_losses_figures_and_gradients() {
    let g = golden();
    let pairs = pairs(&g);
    let rows = Rows::new(&pairs, &[0, 1, 2], 64, 3);
    let device = Default::default();
    let model = policy();
    let reference: Vec<f32> = sequence_logps(&model.clone().without_lora(), &rows, &device)
        .into_data()
        .iter::<f32>()
        .collect();
    let diff = max_diff(&reference, &floats(&g["reference_logps"]));
    assert!(diff < 1e-4, "reference log-probabilities differ by {diff}");
    for (name, loss, smoothing) in [
        ("sigmoid", DpoLoss::Sigmoid, 0.0),
        ("sigmoid_ls", DpoLoss::Sigmoid, 0.1),
        ("ipo", DpoLoss::Ipo, 0.0),
        ("hinge", DpoLoss::Hinge, 0.0),
    ] {
        let cfg = ObjectiveSection {
            kind: ObjectiveKind::Dpo,
            beta: g["beta"].as_f64().unwrap(),
            loss,
            label_smoothing: smoothing,
        };
        let policy_logps = sequence_logps(&model, &rows, &device);
        let policy_host: Vec<f32> = policy_logps.clone().into_data().iter::<f32>().collect();
        let diff = max_diff(&policy_host, &floats(&g["policy_logps"]));
        assert!(diff < 1e-4, "policy log-probabilities differ by {diff}");
        let losses = pair_losses(&cfg, policy_logps, &reference, &rows.scored);
        let mean = losses.clone().mean();
        let want = &g["losses"][name];
        let losses_host: Vec<f32> = losses.into_data().iter::<f32>().collect();
        for (figure, value) in pair_figures(&cfg, &losses_host, &policy_host, &reference) {
            let expected = want[figure].as_f64().unwrap();
            assert!(
                (value - expected).abs() < 1e-5 * expected.abs().max(1.0),
                "{name} {figure}: {value} against TRL's {expected}"
            );
        }
        let golden_grads = read_safetensors("dpo/golden.safetensors");
        let grads = mean.backward();
        assert_lora_grads(&model, &grads, &golden_grads, name);
    }
}

#[test]
fn a_fresh_adapter_is_its_own_reference() {
    let g = golden();
    let pairs = pairs(&g);
    let rows = Rows::new(&pairs, &[0, 1, 2], 64, 3);
    let device = Default::default();
    let dir = fixtures().join("llama/llama-gqa-rope3");
    let config = ModelConfig::load(&dir).unwrap();
    let model = Llama::<Ad>::load(&config, &WeightFiles::open(&dir).unwrap(), &device)
        .unwrap()
        .with_lora(&Default::default(), 9);
    let reference: Vec<f32> = sequence_logps(&model.clone().without_lora(), &rows, &device)
        .into_data()
        .iter::<f32>()
        .collect();
    let cfg = ObjectiveSection {
        kind: ObjectiveKind::Dpo,
        ..Default::default()
    };
    let policy = sequence_logps(&model, &rows, &device);
    let policy_host: Vec<f32> = policy.clone().into_data().iter::<f32>().collect();
    let losses: Vec<f32> = pair_losses(&cfg, policy, &reference, &rows.scored)
        .into_data()
        .iter::<f32>()
        .collect();
    // log σ(0) = -log 2, to the last bit of an f32.
    assert!(
        losses.iter().all(|&l| l == std::f32::consts::LN_2),
        "{losses:?}"
    );
    let figures = pair_figures(&cfg, &losses, &policy_host, &reference);
    for (name, value) in &figures[1..] {
        if name.starts_with("rewards/") {
            assert_eq!(*value, 0.0, "{name}");
        }
    }
}
