//! Who and what each example of a split is: its patient and its task, in
//! the order [`crate::reader::PackedReader`] numbers documents, so that
//! per-document scores can be grouped by patient and by task; and one task's
//! examples whole, with their tokens, for evaluations that generate.

use crate::reader::{Location, ReaderError, list_column, part_files, row_values, typed, values_of};
use crate::schema::col;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int8Type, Int32Type};
use arrow_array::{RecordBatch, StringArray};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::fs::File;
use std::path::Path;

/// One example's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExampleLabel {
    /// The example id.
    pub example_id: String,
    /// Its pseudonymous patient key.
    pub patient_key: String,
    /// The task that built it (`timeline`, `next-diagnosis`, `chat`).
    pub task: String,
}

/// One example with its tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// Who and what it is.
    pub label: ExampleLabel,
    /// Its token ids.
    pub input_ids: Vec<u32>,
    /// 1 where a token is trained on (the answer).
    pub loss_mask: Vec<u8>,
}

const LABELS: [&str; 3] = [col::EXAMPLE_ID, col::PATIENT_KEY, col::TASK];
const TOKENS: [&str; 2] = [col::INPUT_IDS, col::LOSS_MASK];

/// The labels of every example of `dir/split/`, in file and row order.
pub fn read_labels(dir: &Path, split: &str) -> Result<Vec<ExampleLabel>, ReaderError> {
    let mut labels = Vec::new();
    for path in part_files(&dir.join(split), split)? {
        read_part(&path, &LABELS, &mut |batch, row| {
            labels.push(label(path.as_path(), batch, row)?);
            Ok(())
        })?;
    }
    Ok(labels)
}

/// The examples of `dir/split/` that `keep` accepts, with their tokens, in
/// file order.
pub fn read_examples(
    dir: &Path,
    split: &str,
    keep: &dyn Fn(&ExampleLabel) -> bool,
) -> Result<Vec<Example>, ReaderError> {
    let mut examples = Vec::new();
    let columns: Vec<&str> = LABELS.iter().chain(&TOKENS).copied().collect();
    for path in part_files(&dir.join(split), split)? {
        let path = path.as_path();
        read_part(path, &columns, &mut |batch, row| {
            let label = label(path, batch, row)?;
            if !keep(&label) {
                return Ok(());
            }
            let ids = list_column(path, batch, col::INPUT_IDS)?;
            let mask = list_column(path, batch, col::LOSS_MASK)?;
            let ids = row_values(ids, values_of::<Int32Type>(path, ids, col::INPUT_IDS)?, row);
            let mask = row_values(
                mask,
                values_of::<Int8Type>(path, mask, col::LOSS_MASK)?,
                row,
            );
            let at = || Location::File {
                path: path.to_owned(),
                row,
            };
            let ids = ids.ok_or_else(|| ReaderError::Null {
                at: at(),
                column: col::INPUT_IDS,
            })?;
            let mask = mask.ok_or_else(|| ReaderError::Null {
                at: at(),
                column: col::LOSS_MASK,
            })?;
            let input_ids = ids
                .iter()
                .map(|&id| {
                    u32::try_from(id).map_err(|_| ReaderError::InvalidToken {
                        at: at(),
                        value: i64::from(id),
                    })
                })
                .collect::<Result<_, _>>()?;
            examples.push(Example {
                label,
                input_ids,
                loss_mask: mask.iter().map(|&m| u8::from(m == 1)).collect(),
            });
            Ok(())
        })?;
    }
    Ok(examples)
}

fn label(path: &Path, batch: &RecordBatch, row: usize) -> Result<ExampleLabel, ReaderError> {
    let column = |name| typed(path, batch, name, |a| a.as_string_opt::<i32>());
    let (ids, patients, tasks): (&StringArray, &StringArray, &StringArray) = (
        column(col::EXAMPLE_ID)?,
        column(col::PATIENT_KEY)?,
        column(col::TASK)?,
    );
    Ok(ExampleLabel {
        example_id: ids.value(row).to_owned(),
        patient_key: patients.value(row).to_owned(),
        task: tasks.value(row).to_owned(),
    })
}

/// Calls `each` with every row of `path`, reading only `columns`.
fn read_part(
    path: &Path,
    columns: &[&'static str],
    each: &mut dyn FnMut(&RecordBatch, usize) -> Result<(), ReaderError>,
) -> Result<(), ReaderError> {
    let file = File::open(path).map_err(|source| ReaderError::Io {
        path: path.to_owned(),
        source,
    })?;
    let parquet_err = |source| ReaderError::Parquet {
        path: path.to_owned(),
        source,
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_err)?;
    let mut roots = Vec::new();
    for &name in columns {
        let index = builder
            .schema()
            .index_of(name)
            .map_err(|_| ReaderError::MissingColumn {
                path: path.to_owned(),
                column: name,
            })?;
        roots.push(index);
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    for batch in builder.with_projection(mask).build().map_err(parquet_err)? {
        let batch = batch.map_err(|source| ReaderError::Decode {
            path: path.to_owned(),
            source,
        })?;
        for row in 0..batch.num_rows() {
            each(&batch, row)?;
        }
    }
    Ok(())
}
