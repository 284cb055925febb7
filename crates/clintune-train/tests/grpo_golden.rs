//! GRPO's advantages, loss, gradient and figures against TRL 1.16's own
//! `_compute_loss` (`tests/fixtures/grpo/make_golden.py`), for every loss
//! type, with and without the KL term; and through the model, the gradient
//! of every LoRA matrix against TRL with PEFT and transformers
//! (`make_lora_golden.py`).

mod common;

use burn::prelude::*;
use clintune_train::objective::grpo::{
    CompletionRows, GrpoInputs, GrpoLossConfig, GrpoLossType, ScaleRewards, advantages, grpo_loss,
};
use common::{Ad, assert_lora_grads, fixtures, policy, read_safetensors};
use serde_json::Value;

fn golden() -> Value {
    read_json("grpo/golden.json")
}

fn read_json(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join(name)).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn matrix(v: &Value) -> (Vec<f32>, [usize; 2]) {
    let rows: Vec<Vec<f64>> = v.as_array().unwrap().iter().map(floats).collect();
    let shape = [rows.len(), rows[0].len()];
    (rows.concat().into_iter().map(|x| x as f32).collect(), shape)
}

fn tensor(v: &Value) -> Tensor<Ad, 2> {
    let (data, shape) = matrix(v);
    Tensor::from_data(TensorData::new(data, shape), &Default::default())
}

/// The golden's advantages, scaled per group.
fn group_advantages(g: &Value) -> Vec<f32> {
    let rewards = floats(&g["rewards"]);
    let group = g["group"].as_u64().unwrap() as usize;
    advantages(&rewards, group, ScaleRewards::Group)
        .into_iter()
        .map(|a| a as f32)
        .collect()
}

/// The loss settings of a golden's `case`, with `beta`.
fn loss_config(g: &Value, case: &Value, beta: f64) -> GrpoLossConfig {
    GrpoLossConfig {
        loss_type: loss_type(&case["loss_type"]),
        epsilon: g["epsilon"].as_f64().unwrap(),
        epsilon_high: g["epsilon_high"].as_f64().unwrap(),
        beta,
        max_completion_length: g["max_completion_length"].as_u64().unwrap() as usize,
    }
}

/// A loss type as TRL names it.
fn loss_type(v: &Value) -> GrpoLossType {
    serde_json::from_value(v.clone()).unwrap()
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}

#[test]
fn advantages_are_trls() {
    let g = golden();
    let rewards = floats(&g["rewards"]);
    let group = g["group"].as_u64().unwrap() as usize;
    for (name, scale) in [
        ("group", ScaleRewards::Group),
        ("batch", ScaleRewards::Batch),
        ("none", ScaleRewards::None),
    ] {
        let ours = advantages(&rewards, group, scale);
        let want = floats(&g["advantages"][name]);
        for (a, b) in ours.iter().zip(&want) {
            assert!(close(*a, *b, 1e-6), "{name}: {ours:?} vs {want:?}");
        }
    }
}

#[test]
fn loss_gradient_and_figures_are_trls_for_every_loss_type() {
    let g = golden();
    let adv = group_advantages(&g);
    for case in g["losses"].as_array().unwrap() {
        let cfg = loss_config(&g, case, case["beta"].as_f64().unwrap());
        let logps = tensor(&g["logps"]).require_grad();
        let n = adv.len();
        let out = grpo_loss(
            GrpoInputs {
                logps: logps.clone(),
                old_logps: tensor(&g["old_logps"]),
                ref_logps: Some(tensor(&g["ref_logps"])),
                advantages: Tensor::from_data(
                    TensorData::new(adv.clone(), [n]),
                    &Default::default(),
                ),
                mask: tensor(&g["mask"]),
                num_items_in_batch: g["num_items_in_batch"].as_f64().unwrap(),
            },
            &cfg,
        );
        let what = format!("{} beta {}", case["loss_type"], cfg.beta);
        let loss = f64::from(out.loss.clone().into_scalar());
        assert!(
            close(loss, case["loss"].as_f64().unwrap(), 1e-5),
            "{what}: {loss}"
        );
        let grads = out.loss.backward();
        let grad: Vec<f32> = logps
            .grad(&grads)
            .unwrap()
            .into_data()
            .iter::<f32>()
            .collect();
        let (want, _) = matrix(&case["grad"]);
        for (a, b) in grad.iter().zip(&want) {
            assert!(
                close(f64::from(*a), f64::from(*b), 1e-5),
                "{what}: {grad:?} vs {want:?}"
            );
        }
        let m = &case["metrics"];
        for (ours, key) in [
            (out.clip_low, "clip_ratio/low_mean"),
            (out.clip_high, "clip_ratio/high_mean"),
            (out.clip_region, "clip_ratio/region_mean"),
        ] {
            assert!(
                close(ours, m[key].as_f64().unwrap(), 1e-6),
                "{what} {key}: {ours}"
            );
        }
        match (out.kl, m["kl"].as_f64()) {
            (Some(ours), Some(want)) => assert!(close(ours, want, 1e-5), "{what} kl: {ours}"),
            (None, None) => {}
            other => panic!("{what}: kl {other:?}"),
        }
    }
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// Per-token values of the completions (`[completions, tokens]`, as TRL
/// lays them out) placed at their rows' positions (`[rows, seq - 1]`),
/// `fill`'s value elsewhere.
fn at_positions(values: &Value, starts: &[usize], fill: &[f32], cols: usize) -> Tensor<Ad, 2> {
    let (values, [n, tokens]) = matrix(values);
    let mut out = fill.to_vec();
    for (i, &start) in starts.iter().enumerate() {
        for t in 0..tokens.min(cols + 1 - start) {
            out[i * cols + start - 1 + t] = values[i * tokens + t];
        }
    }
    Tensor::from_data(TensorData::new(out, [n, cols]), &Default::default())
}

#[test]
fn lora_gradients_through_the_model_are_trl_and_peft_s_for_every_loss_type() {
    let g = read_json("grpo/lora_golden.json");
    let prompts: Vec<Vec<u32>> = g["prompts"].as_array().unwrap().iter().map(ids).collect();
    let completions: Vec<(usize, Vec<u32>)> = g["completions"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .flat_map(|(p, cs)| cs.as_array().unwrap().iter().map(move |c| (p, ids(c))))
        .collect();
    let pairs = completions
        .iter()
        .map(|(p, c)| (prompts[*p].as_slice(), c.as_slice()));
    let rows = CompletionRows::new(pairs, g["pad"].as_u64().unwrap() as u32);
    let starts: Vec<usize> = completions.iter().map(|(p, _)| prompts[*p].len()).collect();
    let device = Default::default();
    let model = policy();
    let reference = rows.logps(&model.clone().without_lora(), &device);
    let cols = reference.dims()[1];
    let mask = rows.mask::<Ad>(&device);
    // Where the mask is 0 the values are never used; the policy's own
    // there keeps every ratio finite.
    let detached: Vec<f32> = rows
        .logps(&model, &device)
        .into_data()
        .iter::<f32>()
        .collect();
    let want_ref = at_positions(&g["ref_logps"], &starts, &detached, cols);
    let ours: Vec<f32> = (reference.clone() * mask.clone())
        .into_data()
        .iter::<f32>()
        .collect();
    let theirs: Vec<f32> = (want_ref * mask.clone())
        .into_data()
        .iter::<f32>()
        .collect();
    let diff = ours
        .iter()
        .zip(&theirs)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(diff < 1e-4, "reference log-probabilities differ by {diff}");
    let adv = group_advantages(&g);
    let lora_grads = read_safetensors("grpo/lora_golden.safetensors");
    for case in g["losses"].as_array().unwrap() {
        let name = case["loss_type"].as_str().unwrap();
        let cfg = loss_config(&g, case, g["beta"].as_f64().unwrap());
        let n = adv.len();
        let out = grpo_loss(
            GrpoInputs {
                logps: rows.logps(&model, &device),
                old_logps: at_positions(&g["old_logps"], &starts, &detached, cols),
                ref_logps: Some(reference.clone().detach()),
                advantages: Tensor::from_data(TensorData::new(adv.clone(), [n]), &device),
                mask: mask.clone(),
                num_items_in_batch: g["num_items_in_batch"].as_f64().unwrap(),
            },
            &cfg,
        );
        let loss = f64::from(out.loss.clone().into_scalar());
        assert!(
            close(loss, case["loss"].as_f64().unwrap(), 1e-5),
            "{name}: {loss}"
        );
        let m = &case["metrics"];
        assert!(
            close(
                out.clip_low,
                m["clip_ratio/low_mean"].as_f64().unwrap(),
                1e-6
            ),
            "{name}"
        );
        assert!(out.clip_low > 0.0, "{name}: the golden clips some ratios");
        let grads = out.loss.backward();
        assert_lora_grads(&model, &grads, &lora_grads, name);
    }
}
