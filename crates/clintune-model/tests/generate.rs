//! Generation: greedy continuations equal transformers' `generate`, cached
//! steps equal full forwards, and generation stops where it should.

mod common;

use clintune_model::generate::KvCache;
use clintune_model::{GenerateConfig, Llama, Sampling, StopReason};
use common::{B, fixture, logits, max_abs_diff, model};
use serde_json::Value;

fn greedy(max_new_tokens: usize, stop_tokens: Vec<u32>) -> GenerateConfig {
    GenerateConfig {
        max_new_tokens,
        stop_tokens,
        sampling: Sampling::greedy(),
    }
}

#[test]
fn greedy_generation_equals_transformers() {
    let path = fixture("generation.json");
    let golden: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let cases = golden["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 4);
    for case in cases {
        let name = case["model"].as_str().unwrap();
        let prompt: Vec<u32> = serde_json::from_value(case["prompt"].clone()).unwrap();
        let want: Vec<u32> = serde_json::from_value(case["generated"].clone()).unwrap();
        let model: Llama<B> = model(name);
        let got = model.generate(&prompt, &greedy(want.len(), vec![]), 256, |_| {});
        assert_eq!(got.tokens, want, "{name} {prompt:?}");
        assert_eq!(got.stop, StopReason::Length);
    }
}

#[test]
fn cached_steps_equal_full_forwards() {
    let model: Llama<B> = model("qwen2-bias");
    let mut sequence = vec![48u32, 413, 721, 80, 261];
    let mut cache = KvCache::new(2);
    let mut step = model.step(&sequence, &mut cache);
    for _ in 0..6 {
        let cached = step.into_data().to_vec::<f32>().unwrap();
        let full = logits(&model, std::slice::from_ref(&sequence));
        let last = &full[full.len() - cached.len()..];
        let diff = max_abs_diff(&cached, last);
        assert!(diff < 1e-5, "at length {}: {diff}", sequence.len());
        let next = (sequence.len() * 37 % 1000) as u32;
        sequence.push(next);
        step = model.step(&[next], &mut cache);
    }
    assert_eq!(cache.len(), sequence.len());
}

#[test]
fn generation_stops_at_a_stop_token_or_the_context() {
    let model: Llama<B> = model("llama-gqa-rope3");
    let prompt = [666, 504, 267, 375];
    let free = model.generate(&prompt, &greedy(12, vec![]), 256, |_| {});
    let stop = free.tokens[4];
    let first = free.tokens.iter().position(|&t| t == stop).unwrap();
    let mut seen = Vec::new();
    let stopped = model.generate(&prompt, &greedy(12, vec![stop]), 256, |t| seen.push(t));
    assert_eq!(stopped.stop, StopReason::StopToken);
    assert_eq!(stopped.tokens, free.tokens[..=first]);
    assert_eq!(seen, stopped.tokens);

    let short = model.generate(&prompt, &greedy(12, vec![]), 7, |_| {});
    assert_eq!(short.stop, StopReason::Context);
    assert_eq!(prompt.len() + short.tokens.len(), 7);
}

#[test]
fn sampling_is_reproducible_from_its_seed() {
    let model: Llama<B> = model("tied");
    let run = |seed| {
        let cfg = GenerateConfig {
            sampling: Sampling {
                temperature: 1.0,
                top_p: 0.95,
                top_k: 0,
                repetition_penalty: 1.0,
                seed,
            },
            ..greedy(16, vec![])
        };
        model.generate(&[715, 462, 74], &cfg, 256, |_| {}).tokens
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

#[test]
fn a_group_sampled_as_one_batch_continues_each_row_as_alone() {
    // Rows with their own seeds, stop tokens and lengths, run side by side,
    // give what each seed gives on its own (the batched step only reorders
    // sums, which does not move a draw here).
    for name in ["tied", "llama-gqa-rope3", "qwen2-bias"] {
        let model: Llama<B> = model(name);
        let prompt = [666u32, 504, 267, 375];
        let sampled = |seed| GenerateConfig {
            sampling: Sampling {
                temperature: 1.0,
                top_p: 0.9,
                top_k: 0,
                repetition_penalty: 1.0,
                seed,
            },
            ..greedy(10, vec![])
        };
        let seeds = [3u64, 5, 8, 13];
        let alone: Vec<Vec<u32>> = seeds
            .iter()
            .map(|&s| model.generate(&prompt, &sampled(s), 256, |_| {}).tokens)
            .collect();
        // A stop token that ends some rows early and not others.
        let stop = alone[0][2];
        let cfg = GenerateConfig {
            stop_tokens: vec![stop],
            ..sampled(0)
        };
        let group = model.generate_group(&prompt, &cfg, &seeds, 256);
        assert_eq!(group.len(), seeds.len());
        for ((row, free), &seed) in group.iter().zip(&alone).zip(&seeds) {
            let single = model.generate(
                &prompt,
                &GenerateConfig {
                    stop_tokens: vec![stop],
                    ..sampled(seed)
                },
                256,
                |_| {},
            );
            assert_eq!(row.tokens, single.tokens, "{name} seed {seed}");
            assert_eq!(row.stop, single.stop, "{name} seed {seed}");
            let ends = free
                .iter()
                .position(|&t| t == stop)
                .map_or(free.len(), |i| i + 1);
            assert_eq!(row.tokens, free[..ends], "{name} seed {seed}");
        }
        assert_eq!(group[0].stop, StopReason::StopToken);
        // The context ends every row at once.
        let short = model.generate_group(&prompt, &sampled(0), &seeds, 7);
        for row in &short {
            assert_eq!(row.stop, StopReason::Context);
            assert_eq!(prompt.len() + row.tokens.len(), 7);
        }
    }
}
