//! Examples as Parquet: the dataset's split files, and shard candidate files.
//!
//! A shard's candidates carry two more columns, the dedup keys (`exact_key`,
//! `minhash`), because `curate merge` deduplicates across shards from those
//! alone. Final dataset files hold the documented schema only.

use crate::encode::Example;
use crate::error::CurateError;
use crate::schema::{
    META_DATASET_ID, META_SCHEMA_VERSION, META_STAGE, SCHEMA_VERSION, col, schema,
};
use arrow_array::builder::{Int8Builder, Int32Builder, ListBuilder, StringBuilder, UInt32Builder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Int8Type, Int32Type, UInt32Type};
use arrow_array::{Array, ArrayRef, Int32Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use std::path::Path;
use std::sync::Arc;

/// Examples per row group: small enough for a reader to seek, large enough to compress.
const ROW_GROUP: usize = 1024;

/// Column of a candidate's exact-dedup key (32 hex digits).
const EXACT_KEY: &str = "exact_key";
/// Column of a candidate's MinHash signature.
const MINHASH: &str = "minhash";

/// Which file layout to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// A split file of the dataset.
    Dataset,
    /// A shard's candidate file, with the dedup keys.
    Candidates,
}

fn candidates_schema() -> Arc<Schema> {
    let mut fields: Vec<Field> = schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(EXACT_KEY, DataType::Utf8, false));
    fields.push(Field::new(
        MINHASH,
        DataType::List(Arc::new(Field::new("item", DataType::UInt32, false))),
        false,
    ));
    Arc::new(Schema::new(fields))
}

/// Writes `examples` to a new zstd Parquet file at `path`.
pub fn write(
    path: &Path,
    examples: &[&Example],
    layout: Layout,
    stage: &str,
    dataset_id: &str,
) -> Result<(), CurateError> {
    let schema = match layout {
        Layout::Dataset => schema(),
        Layout::Candidates => candidates_schema(),
    };
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).map_err(CurateError::parquet(path))?,
        ))
        .set_max_row_group_row_count(Some(ROW_GROUP))
        // Dictionaries pay off only for the repetitive short columns; for
        // text and token lists the writer would build one and then give up.
        .set_dictionary_enabled(false)
        .set_column_dictionary_enabled(col::PATIENT_KEY.into(), true)
        .set_column_dictionary_enabled(col::SPLIT.into(), true)
        .set_column_dictionary_enabled(col::TASK.into(), true)
        .set_column_dictionary_enabled(col::PROMPT_TOKENS.into(), true)
        .set_key_value_metadata(Some(vec![
            KeyValue::new(META_STAGE.into(), stage.to_string()),
            KeyValue::new(META_SCHEMA_VERSION.into(), SCHEMA_VERSION.to_string()),
            KeyValue::new(META_DATASET_ID.into(), dataset_id.to_string()),
        ]))
        .build();
    let file = std::fs::File::create(path).map_err(CurateError::io(path))?;
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props))
        .map_err(CurateError::parquet(path))?;
    for chunk in examples.chunks(ROW_GROUP) {
        let batch = RecordBatch::try_new(schema.clone(), columns(chunk, layout))
            .map_err(CurateError::parquet(path))?;
        writer.write(&batch).map_err(CurateError::parquet(path))?;
    }
    let file = writer.into_inner().map_err(CurateError::parquet(path))?;
    file.sync_all().map_err(CurateError::io(path))
}

fn columns(rows: &[&Example], layout: Layout) -> Vec<ArrayRef> {
    let s = |f: fn(&Example) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(|e| f(e))))
    };
    let mut ids = ListBuilder::new(Int32Builder::new()).with_field(item(DataType::Int32));
    let mut mask = ListBuilder::new(Int8Builder::new()).with_field(item(DataType::Int8));
    let mut keys = ListBuilder::new(StringBuilder::new()).with_field(item(DataType::Utf8));
    let mut rejected = ListBuilder::new(Int32Builder::new()).with_field(item(DataType::Int32));
    let mut rejected_mask = ListBuilder::new(Int8Builder::new()).with_field(item(DataType::Int8));
    for e in rows {
        // Token ids fit in i32: vocabularies are far below 2^31.
        ids.append_value(e.input_ids.iter().map(|&t| Some(t as i32)));
        mask.append_value(e.loss_mask.iter().map(|&m| Some(m as i8)));
        keys.append_value(e.record_keys.iter().map(Some));
        rejected.append_value(e.rejected_ids.iter().map(|&t| Some(t as i32)));
        rejected_mask.append_value(e.rejected_mask.iter().map(|&m| Some(m as i8)));
    }
    let mut out: Vec<ArrayRef> = vec![
        s(|e| &e.example_id),
        s(|e| &e.patient_key),
        s(|e| &e.split),
        s(|e| &e.task),
        s(|e| &e.text),
        Arc::new(ids.finish()),
        Arc::new(mask.finish()),
        Arc::new(
            rows.iter()
                .map(|e| e.input_ids.len() as i32)
                .collect::<Int32Array>(),
        ),
        Arc::new(keys.finish()),
        Arc::new(
            rows.iter()
                .map(|e| e.prompt_tokens as i32)
                .collect::<Int32Array>(),
        ),
        Arc::new(rejected.finish()),
        Arc::new(rejected_mask.finish()),
    ];
    if layout == Layout::Candidates {
        out.push(Arc::new(StringArray::from_iter_values(
            rows.iter().map(|e| format!("{:032x}", e.exact_key)),
        )));
        let mut sig = ListBuilder::new(UInt32Builder::new()).with_field(item(DataType::UInt32));
        for e in rows {
            sig.append_value(e.signature.iter().map(|&v| Some(v)));
        }
        out.push(Arc::new(sig.finish()));
    }
    out
}

fn item(data_type: DataType) -> Arc<Field> {
    Arc::new(Field::new("item", data_type, false))
}

/// Reads a shard's candidate file back.
pub fn read_candidates(path: &Path) -> Result<Vec<Example>, CurateError> {
    let file = std::fs::File::open(path).map_err(CurateError::io(path))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(CurateError::parquet(path))?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(CurateError::parquet(path))?;
        read_batch(&batch, &mut out).map_err(|message| CurateError::Parquet {
            path: path.to_path_buf(),
            source: message.into(),
        })?;
    }
    Ok(out)
}

fn read_batch(batch: &RecordBatch, out: &mut Vec<Example>) -> Result<(), String> {
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| format!("column `{name}` is missing"))
    };
    let text = |name: &str| -> Result<&StringArray, String> {
        column(name)?
            .as_string_opt::<i32>()
            .ok_or_else(|| format!("column `{name}` is not utf8"))
    };
    let list = |name: &str| -> Result<&arrow_array::ListArray, String> {
        column(name)?
            .as_list_opt::<i32>()
            .ok_or_else(|| format!("column `{name}` is not a list"))
    };
    let (id, patient, split, task, body) = (
        text(col::EXAMPLE_ID)?,
        text(col::PATIENT_KEY)?,
        text(col::SPLIT)?,
        text(col::TASK)?,
        text(col::TEXT)?,
    );
    let (ids, mask, keys, sig) = (
        list(col::INPUT_IDS)?,
        list(col::LOSS_MASK)?,
        list(col::RECORD_KEYS)?,
        list(MINHASH)?,
    );
    let exact = text(EXACT_KEY)?;
    let prompt_tokens = column(col::PROMPT_TOKENS)?
        .as_primitive_opt::<Int32Type>()
        .ok_or_else(|| format!("column `{}` is not int32", col::PROMPT_TOKENS))?;
    let (rejected, rejected_mask) = (list(col::REJECTED_IDS)?, list(col::REJECTED_MASK)?);
    for row in 0..batch.num_rows() {
        let where_ = || format!("row {row} ({})", id.value(row));
        let ids_row = ids.value(row);
        let mask_row = mask.value(row);
        let ids_row = ids_row
            .as_primitive_opt::<Int32Type>()
            .ok_or_else(|| format!("{}: input_ids are not int32", where_()))?;
        let mask_row = mask_row
            .as_primitive_opt::<Int8Type>()
            .ok_or_else(|| format!("{}: loss_mask is not int8", where_()))?;
        let sig_row = sig.value(row);
        let sig_row = sig_row
            .as_primitive_opt::<UInt32Type>()
            .ok_or_else(|| format!("{}: minhash is not uint32", where_()))?;
        let rejected_row = rejected.value(row);
        let rejected_row = rejected_row
            .as_primitive_opt::<Int32Type>()
            .ok_or_else(|| format!("{}: rejected_ids are not int32", where_()))?;
        let rejected_mask_row = rejected_mask.value(row);
        let rejected_mask_row = rejected_mask_row
            .as_primitive_opt::<Int8Type>()
            .ok_or_else(|| format!("{}: rejected_mask is not int8", where_()))?;
        let keys_row = keys.value(row);
        let keys_row = keys_row
            .as_string_opt::<i32>()
            .ok_or_else(|| format!("{}: record_keys are not utf8", where_()))?;
        out.push(Example {
            example_id: id.value(row).to_string(),
            patient_key: patient.value(row).to_string(),
            split: split.value(row).to_string(),
            task: task.value(row).to_string(),
            text: body.value(row).to_string(),
            input_ids: ids_row.values().iter().map(|&t| t as u32).collect(),
            loss_mask: mask_row.values().iter().map(|&m| m as u8).collect(),
            prompt_tokens: prompt_tokens.value(row).max(0) as usize,
            rejected_ids: rejected_row.values().iter().map(|&t| t as u32).collect(),
            rejected_mask: rejected_mask_row
                .values()
                .iter()
                .map(|&m| m as u8)
                .collect(),
            record_keys: (0..keys_row.len())
                .map(|i| keys_row.value(i).to_string())
                .collect(),
            exact_key: u128::from_str_radix(exact.value(row), 16)
                .map_err(|_| format!("{}: exact_key is not hex", where_()))?,
            signature: sig_row.values().to_vec(),
        });
    }
    Ok(())
}
