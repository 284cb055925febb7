//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

pub mod parquet_facts;

use arrow_array::{Array, Int32Array, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The bundled sample records.
pub fn sample() -> PathBuf {
    repo().join("datasets/sample")
}

/// Copies the files under `from` to `to`, folders included.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A fixed test key (not a secret: used on synthetic data only).
pub const KEY_A: &str = "test-key-A-0123456789abcdef0123456789abcdef";
/// A second test key.
pub const KEY_B: &str = "test-key-B-fedcba9876543210fedcba9876543210";

/// The clintune binary with `args`, run from the repository, with none of
/// the environment variables it reads from the caller's environment.
pub fn clintune_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clintune"));
    cmd.args(args).current_dir(repo()).env("NO_COLOR", "1");
    for var in [
        "CLINTUNE_DEID_KEY",
        "CLINTUNE_NODE_RANK",
        "CLINTUNE_ORCHESTRATOR",
        "CLINTUNE_NODE_ADDRESS",
        "SLURM_NNODES",
        "SLURM_NODEID",
        "SLURMD_NODENAME",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs the clintune binary with `args` and the key in the environment.
pub fn clintune(args: &[&str], key: Option<&str>) -> Output {
    let mut cmd = clintune_command(args);
    if let Some(k) = key {
        cmd.env("CLINTUNE_DEID_KEY", k);
    }
    cmd.output().expect("clintune runs")
}

/// Runs `clintune deid` on `inputs` into `out` with a fixed as-of date.
pub fn deid(inputs: &[&Path], out: &Path, key: &str, extra: &[&str]) -> Output {
    let mut args: Vec<String> = vec!["-v".into(), "deid".into()];
    for i in inputs {
        args.push("--input".into());
        args.push(i.display().to_string());
    }
    args.extend([
        "--out".into(),
        out.display().to_string(),
        "--as-of".into(),
        "2026-01-01".into(),
    ]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    clintune(&refs, Some(key))
}

/// The run's `audit.json`.
pub fn read_audit(out: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("audit.json")).unwrap()).unwrap()
}

/// One de-identified row, as read back from Parquet.
#[derive(Debug, Clone)]
pub struct OutRow {
    pub patient_key: String,
    pub resource_type: String,
    pub record_key: String,
    pub timestamp: Option<String>,
    pub age_years: Option<i32>,
    pub fields: Value,
    pub text: Option<String>,
}

/// Reads every Parquet file under `dir/records`.
pub fn read_rows(dir: &Path) -> Vec<OutRow> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("records"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut rows = Vec::new();
    for f in files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&f).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let b = batch.unwrap();
            let col = |n: &str| {
                b.column_by_name(n)
                    .unwrap()
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .unwrap()
                    .clone()
            };
            let (pk, rt, rk, ts, fields, text) = (
                col("patient_key"),
                col("resource_type"),
                col("record_key"),
                col("timestamp"),
                col("fields"),
                col("text"),
            );
            let age = b
                .column_by_name("age_years")
                .unwrap()
                .as_any()
                .downcast_ref::<Int32Array>()
                .unwrap()
                .clone();
            for i in 0..b.num_rows() {
                let opt = |a: &StringArray| (!a.is_null(i)).then(|| a.value(i).to_string());
                rows.push(OutRow {
                    patient_key: pk.value(i).to_string(),
                    resource_type: rt.value(i).to_string(),
                    record_key: rk.value(i).to_string(),
                    timestamp: opt(&ts),
                    age_years: (!age.is_null(i)).then(|| age.value(i)),
                    fields: serde_json::from_str(fields.value(i)).unwrap(),
                    text: opt(&text),
                });
            }
        }
    }
    rows
}

/// Every Patient resource in the sample (bulk NDJSON and Bundles).
pub fn sample_patients() -> Vec<Value> {
    let mut out = Vec::new();
    let bulk = std::fs::read_to_string(sample().join("bulk/Patient.000.ndjson")).unwrap();
    for line in bulk.lines().filter(|l| !l.trim().is_empty()) {
        out.push(serde_json::from_str(line).unwrap());
    }
    for entry in std::fs::read_dir(sample().join("bundles")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "json") {
            let b: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            for e in b["entry"].as_array().unwrap() {
                if e["resource"]["resourceType"] == "Patient" {
                    out.push(e["resource"].clone());
                }
            }
        }
    }
    out
}

/// The committed tokenizer fixture (trained by clintune on the sample's chat traces).
pub fn fixture_tokenizer() -> PathBuf {
    repo().join("tests/fixtures/tokenizer")
}

/// De-identifies the bundled sample into `dir/deid`; returns that path.
pub fn deid_sample(dir: &Path) -> PathBuf {
    let out = dir.join("deid");
    let o = deid(&[&sample()], &out, KEY_A, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

/// De-identifies and curates the bundled sample into `dir/curated`, encoded
/// with the tokenizer of the model directory `model`; returns that path.
pub fn curated_sample(dir: &Path, model: &str) -> PathBuf {
    let deid = deid_sample(dir);
    let out = dir.join("curated");
    curate_ok(&[
        "--input",
        &s(&deid),
        "--tokenizer",
        model,
        "--out",
        &s(&out),
    ]);
    out
}

/// Runs `clintune curate` with `args`; panics with stderr on failure.
pub fn curate_ok(args: &[&str]) -> Output {
    let mut all = vec!["curate"];
    all.extend_from_slice(args);
    let o = clintune(&all, None);
    assert!(
        o.status.success(),
        "curate {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// The paths as strings, for argument lists.
pub fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A stage's `manifest.json`, as JSON.
pub fn read_manifest(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap()
}

/// Asserts that a command succeeded, showing its output when it did not.
pub fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The entries of `dir` whose names start with `prefix`, sorted.
pub fn entries_with_prefix(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect();
    found.sort();
    found
}

/// The sample's chat traces curated into `dir/curated` with `model`'s
/// tokenizer and two canaries, planted once and 48 times.
pub fn curated_with_canaries(dir: &Path, model: &str) -> PathBuf {
    let deid = deid_sample(dir);
    let config = dir.join("curate-canaries.toml");
    std::fs::write(
        &config,
        "[tasks.timeline]\nenabled = false\n[tasks.next-diagnosis]\nenabled = false\n\
         [audit]\ncanaries = 2\nrepeats = [1, 48]\n",
    )
    .unwrap();
    let out = dir.join("curated");
    curate_ok(&[
        "--input",
        &s(&deid),
        "--tokenizer",
        model,
        "--config",
        &s(&config),
        "--out",
        &s(&out),
    ]);
    out
}

/// A short full fine-tune of `model` on `dataset` (60 steps at lr 5e-3:
/// enough for the fixture to memorize a canary planted 48 times), exported
/// as `dir/exports/NAME/v1`.
pub fn trained_and_exported(dir: &Path, model: &str, dataset: &Path, name: &str) -> PathBuf {
    let recipe = dir.join(format!("{name}.toml"));
    let run = dir.join(format!("run-{name}"));
    let text = format!(
        "[model]\nbase = \"{model}\"\n[data]\ndataset = \"{}\"\nseq_len = 256\nmicro_batch = 2\n\
         grad_accum = 2\n[method]\nkind = \"full\"\n[optimizer]\nlr = 5e-3\n[schedule]\n\
         warmup_steps = 2\n[train]\nmax_steps = 60\ncheckpoint_every = 60\neval_every = 60\n\
         output = \"{}\"\n",
        s(dataset),
        s(&run)
    );
    std::fs::write(&recipe, text).unwrap();
    ok(&clintune(&["train", "-q", &s(&recipe)], None));
    let root = dir.join("exports");
    ok(&clintune(
        &["export", &s(&run), "--name", name, "--root", &s(&root)],
        None,
    ));
    root.join(name).join("v1")
}
