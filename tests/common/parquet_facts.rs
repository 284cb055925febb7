//! What a Parquet file holds, in the form `tests/fixtures/pyarrow/read_parquet.py`
//! prints it, read by clintune's own reader; and that script's output, when
//! python3 with pyarrow is installed.

use arrow_array::cast::AsArray;
use arrow_array::types::{Int8Type, Int32Type};
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Map, Value, json};
use std::path::Path;
use std::process::Command;

/// pyarrow's name of an Arrow type, for the types the dataset uses.
pub fn pyarrow_type(t: &DataType) -> String {
    match t {
        DataType::Utf8 => "string".into(),
        DataType::Int32 => "int32".into(),
        DataType::Int8 => "int8".into(),
        DataType::List(item) => {
            let null = if item.is_nullable() { "" } else { " not null" };
            format!(
                "list<{}: {}{null}>",
                item.name(),
                pyarrow_type(item.data_type())
            )
        }
        other => panic!("unexpected type {other}"),
    }
}

pub fn cell(col: &ArrayRef, i: usize) -> Value {
    if col.is_null(i) {
        return Value::Null;
    }
    match col.data_type() {
        DataType::Utf8 => json!(col.as_string::<i32>().value(i)),
        DataType::Int32 => json!(col.as_primitive::<Int32Type>().value(i)),
        DataType::Int8 => json!(col.as_primitive::<Int8Type>().value(i)),
        DataType::List(_) => {
            let items = col.as_list::<i32>().value(i);
            Value::Array((0..items.len()).map(|j| cell(&items, j)).collect())
        }
        other => panic!("unexpected type {other}"),
    }
}

/// `json.dumps(value, sort_keys=True, ensure_ascii=False)`.
pub fn python_json(v: &Value) -> String {
    match v {
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(python_json).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{}: {}", json!(k), python_json(&map[*k])))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        other => other.to_string(),
    }
}

/// What clintune's own reader sees, in the form the pyarrow script prints.
pub fn facts(path: &Path) -> Value {
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap()).unwrap();
    let schema: Vec<Value> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": pyarrow_type(f.data_type()), "nullable": f.is_nullable()}))
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
            let row: Map<String, Value> = b
                .schema()
                .fields()
                .iter()
                .zip(b.columns())
                .map(|(f, c)| (f.name().clone(), cell(c, i)))
                .collect();
            digest_input.push_str(&python_json(&Value::Object(row)));
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

/// What pyarrow reads from `path`, or `None` when python3 with pyarrow is
/// not installed (the committed golden schemas stand in then).
pub fn pyarrow_facts(path: &Path) -> Option<Value> {
    let has_pyarrow = Command::new("python3")
        .args(["-c", "import pyarrow"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_pyarrow {
        eprintln!("python3 with pyarrow not installed: the golden schema test stands in");
        return None;
    }
    let out = Command::new("python3")
        .arg(super::repo().join("tests/fixtures/pyarrow/read_parquet.py"))
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}
