//! Parity with the reference Parquet reader (pyarrow) for curated datasets:
//! the schema and metadata clintune writes match a golden file recorded by
//! pyarrow (`tests/fixtures/pyarrow/golden-curate-schema.json`), and where
//! python3 with pyarrow is installed, pyarrow reads exactly the rows clintune
//! reads, lists included.

mod common;

use common::parquet_facts::{facts, pyarrow_facts};
use common::*;
use serde_json::{Value, json};
use std::path::PathBuf;

/// The value placed for the dataset id, which changes with every build.
const DATASET_ID: &str = "<dataset id>";

fn produced_part() -> (tempfile::TempDir, PathBuf, Value) {
    let dir = tempfile::tempdir().unwrap();
    let deid = deid_sample(dir.path());
    let out = dir.path().join("curated");
    curate_ok(&[
        "--input",
        &s(&deid),
        "--tokenizer",
        &s(&fixture_tokenizer()),
        "--out",
        &s(&out),
    ]);
    let manifest = read_manifest(&out);
    (dir, out.join("train/part-00000.parquet"), manifest)
}

#[test]
fn schema_and_metadata_match_the_pyarrow_golden() {
    let (_dir, part, manifest) = produced_part();
    let mut ours = facts(&part);
    let id = ours["metadata"]["clintune.dataset_id"].take();
    assert_eq!(id, manifest["config"]["dataset_id"]);
    ours["metadata"]["clintune.dataset_id"] = json!(DATASET_ID);
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/fixtures/pyarrow/golden-curate-schema.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(ours["schema"], golden["schema"]);
    assert_eq!(ours["metadata"], golden["metadata"]);
}

#[test]
fn pyarrow_reads_the_same_rows_when_installed() {
    let (_dir, part, _) = produced_part();
    let Some(theirs) = pyarrow_facts(&part) else {
        return;
    };
    let ours = facts(&part);
    assert!(ours["num_rows"].as_u64().unwrap() > 10);
    assert_eq!(ours, theirs);
}
