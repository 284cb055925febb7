//! De-identified records as Parquet.
//!
//! One row per resource or chat trace. Schema (all UTF-8 unless noted):
//! `patient_key`, `source` (`fhir` | `chat`), `resource_type`, `record_key`,
//! `timestamp` (shifted ISO 8601, nullable), `age_years` (int32, capped at
//! the policy's age cap, nullable), `fields` (JSON object of the kept,
//! de-identified fields), `text` (de-identified note text, nullable).

use crate::error::DeidError;
use arrow_array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

/// Version of the de-identified record schema.
pub const SCHEMA_VERSION: &str = "1";

/// Rows per Parquet row group.
const ROW_GROUP: usize = 8192;

/// One de-identified record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Pseudonymous patient key.
    pub patient_key: String,
    /// `fhir` or `chat`.
    pub source: &'static str,
    /// FHIR resource type, or `ChatTrace`.
    pub resource_type: String,
    /// Pseudonymous record key.
    pub record_key: String,
    /// Shifted event time.
    pub timestamp: Option<String>,
    /// Age at the event, capped.
    pub age_years: Option<i32>,
    /// Kept fields, as a JSON object.
    pub fields: String,
    /// De-identified free text.
    pub text: Option<String>,
}

/// The Arrow schema of the records.
pub fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("patient_key", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("resource_type", DataType::Utf8, false),
        Field::new("record_key", DataType::Utf8, false),
        Field::new("timestamp", DataType::Utf8, true),
        Field::new("age_years", DataType::Int32, true),
        Field::new("fields", DataType::Utf8, false),
        Field::new("text", DataType::Utf8, true),
    ]))
}

fn batch(rows: &[Row]) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let s = |f: fn(&Row) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
    };
    let o = |f: fn(&Row) -> Option<&str>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<StringArray>())
    };
    RecordBatch::try_new(
        schema(),
        vec![
            s(|r| &r.patient_key),
            s(|r| r.source),
            s(|r| &r.resource_type),
            s(|r| &r.record_key),
            o(|r| r.timestamp.as_deref()),
            Arc::new(rows.iter().map(|r| r.age_years).collect::<Int32Array>()),
            s(|r| &r.fields),
            o(|r| r.text.as_deref()),
        ],
    )
}

/// Writes `rows` to a new zstd-compressed Parquet file at `path`.
pub fn write_parquet(path: &Path, rows: &[Row]) -> Result<(), DeidError> {
    let err = |e: clintune_core::Cause| DeidError::Output {
        path: path.to_path_buf(),
        source: e,
    };
    let file = File::create(path).map_err(DeidError::io(path))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).map_err(|e| err(e.into()))?,
        ))
        .set_max_row_group_row_count(Some(ROW_GROUP))
        .set_key_value_metadata(Some(vec![
            KeyValue::new("clintune.stage".into(), "deid".to_string()),
            KeyValue::new("clintune.schema_version".into(), SCHEMA_VERSION.to_string()),
        ]))
        .build();
    let mut writer =
        ArrowWriter::try_new(file, schema(), Some(props)).map_err(|e| err(e.into()))?;
    for chunk in rows.chunks(ROW_GROUP) {
        let b = batch(chunk).map_err(|e| err(e.into()))?;
        writer.write(&b).map_err(|e| err(e.into()))?;
    }
    let file = writer.into_inner().map_err(|e| err(e.into()))?;
    file.sync_all().map_err(DeidError::io(path))?;
    Ok(())
}
