//! Peak memory and time of loading a model, beside the size of its weights.
//!
//! Writes a randomly filled Llama-family checkpoint (f32 and bf16 on disk)
//! under the target directory once, then loads each in a fresh child process
//! that reports its resident memory before loading and its peak after. The
//! goal: the peak grows by less than 1.2× the weights' size in memory (f32).
//! Prints a table; `cargo bench --bench model_load`.

use clintune_core::rng::SplitMix64;
use clintune_model::{Cpu, Llama, ModelConfig, WeightFiles};
use safetensors::tensor::TensorView;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// 8 layers, hidden 1024 (16 heads, 4 key/value heads), SwiGLU 2816,
/// vocabulary 32000: 155.7 M parameters, 594 MiB in f32.
const CONFIG: &str = r#"{
  "model_type": "llama",
  "vocab_size": 32000,
  "hidden_size": 1024,
  "intermediate_size": 2816,
  "num_hidden_layers": 8,
  "num_attention_heads": 16,
  "num_key_value_heads": 4,
  "max_position_embeddings": 2048,
  "rms_norm_eps": 1e-05,
  "rope_theta": 10000.0,
  "tie_word_embeddings": false
}"#;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(Path::new(&args[i + 1]));
        return;
    }
    let config = ModelConfig::parse(CONFIG).expect("bench config");
    let params: usize = config
        .expected_tensors()
        .iter()
        .map(|(_, s)| s.iter().product::<usize>())
        .sum();
    let in_memory = params as f64 * 4.0 / MIB;
    println!(
        "model: {:.1} M parameters, {in_memory:.0} MiB as f32 in memory\n",
        params as f64 / 1e6
    );
    println!("| on disk | file MiB | peak RSS growth MiB | growth / weights | load s |");
    println!("|---|---:|---:|---:|---:|");
    for dtype in [safetensors::Dtype::F32, safetensors::Dtype::BF16] {
        let dir = checkpoint(&config, dtype);
        let file = std::fs::metadata(dir.join("model.safetensors"))
            .map(|m| m.len() as f64 / MIB)
            .unwrap_or(0.0);
        let exe = std::env::current_exe().expect("bench executable");
        let out = Command::new(exe)
            .arg("--child")
            .arg(&dir)
            .output()
            .expect("child process");
        let report = String::from_utf8_lossy(&out.stdout);
        let fields: Vec<f64> = report
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        let [before, peak, secs] = fields[..] else {
            panic!(
                "child said: {report}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let growth = (peak - before) / 1024.0;
        println!(
            "| {dtype:?} | {file:.0} | {growth:.0} | {:.3} | {secs:.2} |",
            growth / in_memory
        );
    }
}

const MIB: f64 = 1024.0 * 1024.0;

/// Loads the model in `dir` and prints resident KiB before, peak KiB after,
/// and the seconds it took.
fn child(dir: &Path) {
    let before = status_kib("VmRSS:");
    let start = Instant::now();
    let config = ModelConfig::load(dir).expect("config");
    let weights = WeightFiles::open(dir).expect("weights");
    let model = Llama::<Cpu>::load(&config, &weights, &Default::default()).expect("load");
    let secs = start.elapsed().as_secs_f64();
    let peak = status_kib("VmHWM:");
    std::hint::black_box(&model);
    println!("{before} {peak} {secs}");
}

fn status_kib(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(f64::NAN)
}

/// Writes the random checkpoint once per dtype and returns its directory.
fn checkpoint(config: &ModelConfig, dtype: safetensors::Dtype) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("model-load-bench").join(format!("{dtype:?}"));
    if dir.join("model.safetensors").is_file() {
        return dir;
    }
    std::fs::create_dir_all(&dir).expect("bench directory");
    std::fs::write(dir.join("config.json"), CONFIG).expect("config.json");
    let mut rng = SplitMix64(5);
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = config
        .expected_tensors()
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let values = (0..n).map(|_| (rng.next_f64() as f32 - 0.5) * 0.04);
            let bytes = match dtype {
                safetensors::Dtype::BF16 => values
                    .flat_map(|v| half::bf16::from_f32(v).to_le_bytes())
                    .collect(),
                _ => values.flat_map(f32::to_le_bytes).collect(),
            };
            (name, shape, bytes)
        })
        .collect();
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            let view = TensorView::new(dtype, shape.clone(), bytes).expect("tensor view");
            (name.clone(), view)
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors"))
        .expect("writing the checkpoint");
    dir
}
