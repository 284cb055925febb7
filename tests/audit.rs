//! `clintune audit memorization` end to end: canaries planted by curation,
//! a model trained on them, and the same audit on the base that never saw
//! them. The planted secret ranks first among its candidates only on the
//! trained model.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;

const MODEL: &str = "tests/fixtures/llama/llama-gqa-rope3";
const CANDIDATES: &str = "1000";

fn audit(model: &Path, dataset: &Path, out: &Path) -> Value {
    ok(&clintune(
        &[
            "audit",
            "memorization",
            "--model",
            &s(model),
            "--dataset",
            &s(dataset),
            "--out",
            &s(out),
            "--candidates",
            CANDIDATES,
            "--extraction-examples",
            "4",
        ],
        None,
    ));
    serde_json::from_str(&std::fs::read_to_string(out.join("audit.json")).unwrap()).unwrap()
}

fn exposure(report: &Value, id: &str) -> f64 {
    let c = report["canaries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id);
    c.unwrap()["exposure"].as_f64().unwrap()
}

#[test]
fn a_canary_trained_on_is_exposed_and_one_never_seen_is_not() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = curated_with_canaries(tmp.path(), MODEL);
    // The secrets stay in the dataset's audit file; the manifest holds hashes.
    let secrets: Value = serde_json::from_str(
        &std::fs::read_to_string(dataset.join("audit/canaries.json")).unwrap(),
    )
    .unwrap();
    let manifest = std::fs::read_to_string(dataset.join("manifest.json")).unwrap();
    for c in secrets.as_array().unwrap() {
        let secret = c["secret"].as_str().unwrap();
        assert!(!manifest.contains(secret));
        assert!(manifest.contains(c["sha256"].as_str().unwrap()));
    }
    let model = trained_and_exported(tmp.path(), MODEL, &dataset, "canary");
    let after = audit(&model, &dataset, &tmp.path().join("audit-trained"));
    let before = audit(Path::new(MODEL), &dataset, &tmp.path().join("audit-base"));
    let max = (1001f64).log2();
    let often = exposure(&after, "canary-01");
    assert!(
        (often - max).abs() < 1e-9,
        "planted 48 times, ranked first: {often}"
    );
    let never = exposure(&before, "canary-01");
    assert!(never < max - 3.0, "the base never saw it: {never}");
    assert_eq!(
        after["mean_exposure_by_repeats"]["48"].as_f64(),
        Some(often)
    );
    for report in [&after, &before] {
        let x = &report["extraction"];
        assert_eq!(x["train"]["examples"].as_u64(), Some(4));
        assert!(x["train"]["rate"].as_f64().unwrap() <= 1.0);
        // The report names canaries by id and hash, never by secret.
        let text = report.to_string();
        for c in secrets.as_array().unwrap() {
            assert!(!text.contains(c["secret"].as_str().unwrap()));
        }
    }
    let m = read_manifest(&tmp.path().join("audit-trained"));
    assert_eq!(m["stage"], "audit");
    ok(&clintune(
        &["lineage", "verify", &s(&tmp.path().join("audit-trained"))],
        None,
    ));
}

#[test]
fn a_dataset_without_canaries_is_refused_with_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = curated_sample(tmp.path(), MODEL);
    let out = tmp.path().join("audit");
    let o = clintune(
        &[
            "audit",
            "memorization",
            "--model",
            MODEL,
            "--dataset",
            &s(&dataset),
            "--out",
            &s(&out),
        ],
        None,
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no canaries") && err.contains("[audit] canaries"),
        "{err}"
    );
    assert!(!out.exists());
}

/// The same records curated on two machines (here: from two folders), or in
/// shards, get the same canaries, so an audit reads the same everywhere.
#[test]
fn canaries_follow_the_records_not_the_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("curate.toml");
    std::fs::write(&config, "[audit]\ncanaries = 3\n").unwrap();
    let mut secrets = Vec::new();
    for site in ["a", "b"] {
        let sample = tmp.path().join(site).join("records");
        copy_dir(&common::sample(), &sample);
        let deid = tmp.path().join(site).join("deid");
        ok(&common::deid(&[&sample], &deid, KEY_A, &[]));
        let out = tmp.path().join(site).join("curated");
        curate_ok(&[
            "--input",
            &s(&deid),
            "--tokenizer",
            MODEL,
            "--config",
            &s(&config),
            "--out",
            &s(&out),
        ]);
        secrets.push(std::fs::read_to_string(out.join("audit/canaries.json")).unwrap());
    }
    // Curated in two shards and merged: the same canaries again.
    let deid = tmp.path().join("a/deid");
    let mut shards = Vec::new();
    for shard in ["0/2", "1/2"] {
        let out = tmp.path().join(format!("shard-{}", &shard[..1]));
        curate_ok(&[
            "--input",
            &s(&deid),
            "--tokenizer",
            MODEL,
            "--config",
            &s(&config),
            "--shard",
            shard,
            "--out",
            &s(&out),
        ]);
        shards.push(s(&out));
    }
    let merged = tmp.path().join("merged");
    curate_ok(&["merge", "--out", &s(&merged), &shards[0], &shards[1]]);
    secrets.push(std::fs::read_to_string(merged.join("audit/canaries.json")).unwrap());
    assert_eq!(secrets[0], secrets[1], "two folders");
    assert_eq!(secrets[0], secrets[2], "shards merged");
}
