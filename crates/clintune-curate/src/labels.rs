//! Who and what each example of a split is: its patient and its task, in
//! the order [`crate::reader::PackedReader`] numbers documents, so that
//! per-document scores can be grouped by patient and by task.

use crate::reader::{ReaderError, part_files, typed};
use crate::schema::col;
use arrow_array::StringArray;
use arrow_array::cast::AsArray;
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

const COLUMNS: [&str; 3] = [col::EXAMPLE_ID, col::PATIENT_KEY, col::TASK];

/// The labels of every example of `dir/split/`, in file and row order.
pub fn read_labels(dir: &Path, split: &str) -> Result<Vec<ExampleLabel>, ReaderError> {
    let mut labels = Vec::new();
    for path in part_files(&dir.join(split), split)? {
        read_part(&path, &mut labels)?;
    }
    Ok(labels)
}

fn read_part(path: &Path, out: &mut Vec<ExampleLabel>) -> Result<(), ReaderError> {
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
    for name in COLUMNS {
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
        let column = |name| typed(path, &batch, name, |a| a.as_string_opt::<i32>());
        let (ids, patients, tasks): (&StringArray, &StringArray, &StringArray) = (
            column(col::EXAMPLE_ID)?,
            column(col::PATIENT_KEY)?,
            column(col::TASK)?,
        );
        for row in 0..batch.num_rows() {
            out.push(ExampleLabel {
                example_id: ids.value(row).to_owned(),
                patient_key: patients.value(row).to_owned(),
                task: tasks.value(row).to_owned(),
            });
        }
    }
    Ok(())
}
