//! GRPO's advantages, loss, gradient and figures against TRL 1.16's own
//! `_compute_loss` (`tests/fixtures/grpo/make_golden.py`), for every loss
//! type, with and without the KL term.

use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use clintune_train::objective::grpo::{
    GrpoInputs, GrpoLossConfig, GrpoLossType, ScaleRewards, advantages, grpo_loss,
};
use serde_json::Value;
use std::path::Path;

type Ad = Autodiff<Flex>;

fn golden() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/grpo/golden.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
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
    let rewards = floats(&g["rewards"]);
    let group = g["group"].as_u64().unwrap() as usize;
    let adv: Vec<f32> = advantages(&rewards, group, ScaleRewards::Group)
        .into_iter()
        .map(|a| a as f32)
        .collect();
    for case in g["losses"].as_array().unwrap() {
        let loss_type = match case["loss_type"].as_str().unwrap() {
            "grpo" => GrpoLossType::Grpo,
            "bnpo" => GrpoLossType::Bnpo,
            "dr_grpo" => GrpoLossType::DrGrpo,
            "dapo" => GrpoLossType::Dapo,
            other => panic!("{other}"),
        };
        let cfg = GrpoLossConfig {
            loss_type,
            epsilon: g["epsilon"].as_f64().unwrap(),
            epsilon_high: g["epsilon_high"].as_f64().unwrap(),
            beta: case["beta"].as_f64().unwrap(),
            max_completion_length: g["max_completion_length"].as_u64().unwrap() as usize,
        };
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
