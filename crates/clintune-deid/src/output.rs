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
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

/// Version of the de-identified record schema.
pub const SCHEMA_VERSION: &str = "1";

/// Rows per Parquet row group.
const ROW_GROUP: usize = 8192;

/// Columns of free text and JSON. Nearly every value is unique, so a
/// dictionary only costs memory (a copy of each value, then a page of them
/// before Parquet falls back to plain encoding), and their minimum and
/// maximum help no reader while copying the longest values twice more.
const PLAIN_COLUMNS: [&str; 2] = ["fields", "text"];

/// Spare capacity worth handing back: a huge value's buffer grew by doubling
/// and may be nearly half empty.
const SLACK: usize = 1 << 20;

/// Gives back the spare capacity of a large string.
pub(crate) fn fit(text: &mut String) {
    if text.capacity() - text.len() > SLACK {
        text.shrink_to_fit();
    }
}

/// The `fields` column's JSON text of a record's kept fields.
pub(crate) fn fields_json(fields: serde_json::Map<String, serde_json::Value>) -> String {
    let mut text = serde_json::Value::Object(fields).to_string();
    fit(&mut text);
    text
}

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

/// Writes `rows` to a new zstd-compressed Parquet file at `path`. Each row
/// group's rows are freed once they are in Arrow form, so a huge record is
/// not held three times over.
pub fn write_parquet(path: &Path, rows: Vec<Row>) -> Result<(), DeidError> {
    let err = |e: clintune_core::Cause| DeidError::Output {
        path: path.to_path_buf(),
        source: e,
    };
    let file = File::create(path).map_err(DeidError::io(path))?;
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).map_err(|e| err(e.into()))?,
        ))
        .set_max_row_group_row_count(Some(ROW_GROUP))
        .set_key_value_metadata(Some(vec![
            KeyValue::new("clintune.stage".into(), "deid".to_string()),
            KeyValue::new("clintune.schema_version".into(), SCHEMA_VERSION.to_string()),
        ]));
    for column in PLAIN_COLUMNS {
        props = props
            .set_column_dictionary_enabled(ColumnPath::from(column), false)
            .set_column_statistics_enabled(ColumnPath::from(column), EnabledStatistics::None);
    }
    let mut writer =
        ArrowWriter::try_new(file, schema(), Some(props.build())).map_err(|e| err(e.into()))?;
    let mut rows = rows.into_iter();
    loop {
        let chunk: Vec<Row> = rows.by_ref().take(ROW_GROUP).collect();
        if chunk.is_empty() {
            break;
        }
        let b = batch(&chunk).map_err(|e| err(e.into()))?;
        drop(chunk);
        writer.write(&b).map_err(|e| err(e.into()))?;
    }
    let file = writer.into_inner().map_err(|e| err(e.into()))?;
    file.sync_all().map_err(DeidError::io(path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    fn row(i: usize, text: &str) -> Row {
        Row {
            patient_key: format!("p{}", i % 2),
            source: "chat",
            resource_type: "ChatTrace".into(),
            record_key: format!("r{i}"),
            timestamp: None,
            age_years: None,
            fields: format!(r#"{{"n":{i}}}"#),
            text: Some(text.to_string()),
        }
    }

    /// Free text and JSON are written plain, without minimum and maximum;
    /// the short key columns keep their dictionary and statistics.
    #[test]
    fn text_columns_have_no_dictionary_or_statistics() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("part.parquet");
        let rows: Vec<Row> = (0..3).map(|i| row(i, &"word ".repeat(i + 1))).collect();
        write_parquet(&path, rows).expect("written");
        let file = File::open(&path).expect("open");
        let reader = SerializedFileReader::new(file).expect("Parquet");
        assert_eq!(reader.metadata().file_metadata().num_rows(), 3);
        let group = reader.metadata().row_group(0);
        for column in group.columns() {
            let name = column.column_path().string();
            let plain = PLAIN_COLUMNS.contains(&name.as_str());
            assert_eq!(column.dictionary_page_offset().is_none(), plain, "{name}");
            if name != "timestamp" && name != "age_years" {
                assert_eq!(column.statistics().is_none(), plain, "{name}");
            }
        }
    }

    #[test]
    fn fields_json_gives_back_the_slack_of_a_large_value() {
        let mut fields = serde_json::Map::new();
        fields.insert("text".into(), "x".repeat(5 << 20).into());
        let json = fields_json(fields);
        assert!(json.capacity() - json.len() <= SLACK, "{}", json.capacity());
        assert_eq!(json.len(), (5 << 20) + r#"{"text":""}"#.len());
    }
}
