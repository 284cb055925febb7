//! Parity with the reference Parquet reader (pyarrow): the schema and metadata
//! clintune writes match a golden file recorded by pyarrow
//! (`tests/fixtures/pyarrow/`), and where python3 with pyarrow is installed,
//! pyarrow reads exactly the rows clintune reads.

mod common;

use arrow_array::{Array, Int32Array, StringArray};
use arrow_schema::DataType;
use common::*;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Map, Value, json};
use std::path::Path;
use std::process::Command;

/// What clintune's own reader sees, in the form the pyarrow script prints.
fn facts(path: &Path) -> Value {
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap()).unwrap();
    let schema: Vec<Value> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let t = match f.data_type() {
                DataType::Utf8 => "string",
                DataType::Int32 => "int32",
                other => panic!("unexpected type {other}"),
            };
            json!({"name": f.name(), "type": t, "nullable": f.is_nullable()})
        })
        .collect();
    let mut metadata = Map::new();
    for kv in builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .into_iter()
        .flatten()
    {
        if !kv.key.starts_with("ARROW:") {
            metadata.insert(kv.key.clone(), json!(kv.value.clone().unwrap_or_default()));
        }
    }
    let mut digest_input = String::new();
    let mut num_rows = 0;
    for batch in builder.build().unwrap() {
        let b = batch.unwrap();
        for i in 0..b.num_rows() {
            let mut row = Map::new();
            for (f, col) in b.schema().fields().iter().zip(b.columns()) {
                let v = if col.is_null(i) {
                    Value::Null
                } else if let Some(s) = col.as_any().downcast_ref::<StringArray>() {
                    json!(s.value(i))
                } else {
                    json!(col.as_any().downcast_ref::<Int32Array>().unwrap().value(i))
                };
                row.insert(f.name().clone(), v);
            }
            digest_input.push_str(&python_json(&row));
            digest_input.push('\n');
            num_rows += 1;
        }
    }
    json!({
        "schema": schema,
        "metadata": metadata,
        "num_rows": num_rows,
        "rows_sha256": clintune_core::hash::sha256_hex(digest_input.as_bytes()),
    })
}

/// `json.dumps(row, sort_keys=True, ensure_ascii=False)` for a flat row.
fn python_json(row: &Map<String, Value>) -> String {
    let mut keys: Vec<&String> = row.keys().collect();
    keys.sort();
    let parts: Vec<String> = keys
        .iter()
        .map(|k| format!("{}: {}", Value::String((*k).clone()), row[*k]))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

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
    let has_pyarrow = Command::new("python3")
        .args(["-c", "import pyarrow"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_pyarrow {
        eprintln!("python3 with pyarrow not installed: the golden schema test stands in");
        return;
    }
    let (_dir, part) = produced_part();
    let out = Command::new("python3")
        .arg(repo().join("tests/fixtures/pyarrow/read_parquet.py"))
        .arg(&part)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ours = facts(&part);
    assert!(ours["num_rows"].as_u64().unwrap() > 500);
    assert_eq!(ours, theirs);
}
