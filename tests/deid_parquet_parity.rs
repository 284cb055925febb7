//! Parity with the reference Parquet reader (pyarrow): the schema and metadata
//! clintune writes match a golden file recorded by pyarrow
//! (`tests/fixtures/pyarrow/`), and where python3 with pyarrow is installed,
//! pyarrow reads exactly the rows clintune reads.

mod common;

use common::parquet_facts::{facts, pyarrow_facts};
use common::*;
use serde_json::Value;

fn produced_part() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("deid");
    let r = deid(&[&sample()], &out, KEY_A, &[]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let part = out.join("records/part-00000.parquet");
    (dir, part)
}

#[test]
fn schema_and_metadata_match_the_pyarrow_golden() {
    let (_dir, part) = produced_part();
    let ours = facts(&part);
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/fixtures/pyarrow/golden-deid-schema.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(ours["schema"], golden["schema"]);
    assert_eq!(ours["metadata"], golden["metadata"]);
}

#[test]
fn pyarrow_reads_the_same_rows_when_installed() {
    let (_dir, part) = produced_part();
    let Some(theirs) = pyarrow_facts(&part) else {
        return;
    };
    let ours = facts(&part);
    assert!(ours["num_rows"].as_u64().unwrap() > 500);
    assert_eq!(ours, theirs);
}
