//! Who and what each example of a split is: its patient and its task, in
//! the order [`crate::reader::PackedReader`] numbers documents, so that
//! per-document scores can be grouped by patient and by task; and examples
//! whole, with their tokens, for evaluations that generate.

use crate::reader::{ReaderError, for_each_batch, part_files, read_documents, typed};
use crate::schema::col;
use arrow_array::cast::AsArray;
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

/// The labels of every example of `dir/split/`, in file and row order.
pub fn read_labels(dir: &Path, split: &str) -> Result<Vec<ExampleLabel>, ReaderError> {
    let mut labels = Vec::new();
    for path in part_files(&dir.join(split), split)? {
        for_each_batch(&path, &LABELS, &mut |batch, _| {
            let column = |name| typed(&path, batch, name, |a| a.as_string_opt::<i32>());
            let (ids, patients, tasks) = (
                column(col::EXAMPLE_ID)?,
                column(col::PATIENT_KEY)?,
                column(col::TASK)?,
            );
            labels.extend((0..batch.num_rows()).map(|row| ExampleLabel {
                example_id: ids.value(row).to_owned(),
                patient_key: patients.value(row).to_owned(),
                task: tasks.value(row).to_owned(),
            }));
            Ok(())
        })?;
    }
    Ok(labels)
}

/// The examples of `dir/split/` that `keep` accepts, with their tokens
/// checked as the packed reader checks them, in file order.
pub fn read_examples(
    dir: &Path,
    split: &str,
    keep: &dyn Fn(&ExampleLabel) -> bool,
) -> Result<Vec<Example>, ReaderError> {
    let labels = read_labels(dir, split)?;
    let docs = read_documents(dir, split)?;
    let aligned = labels.len() == docs.len()
        && (labels.iter().enumerate()).all(|(d, l)| docs.example_id(d) == Some(&l.example_id));
    if !aligned {
        return Err(ReaderError::SplitChanged {
            split: split.to_owned(),
            path: dir.to_owned(),
        });
    }
    let examples = labels.into_iter().enumerate().filter(|(_, l)| keep(l));
    Ok(examples
        .map(|(d, label)| {
            let (input_ids, loss_mask) = docs.document(d);
            Example {
                label,
                input_ids: input_ids.to_vec(),
                loss_mask: loss_mask.to_vec(),
            }
        })
        .collect())
}
