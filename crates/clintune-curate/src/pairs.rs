//! Reads a split's preference pairs back, in batches of whole pairs, with
//! the same reproducible order and [`Cursor`] as the packed reader.
//!
//! Each epoch visits every pair once, in a permutation drawn from
//! `(seed, epoch)` alone (file order without shuffling). A batch holds
//! `batch_size` pairs, except the last of an epoch, which holds the rest:
//! batches never mix epochs, so an evaluation pass is exact.

use crate::reader::{
    Cursor, Location, ReaderError, document_order, for_each_batch, list_column, part_files,
    row_values, typed, values_of,
};
use crate::schema::col;
use crate::tasks::Task;
use arrow_array::cast::AsArray;
use arrow_array::types::{Int8Type, Int32Type};
use arrow_array::{Array, RecordBatch};
use std::path::Path;

/// One preference pair's tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairTokens {
    /// Its example id.
    pub example_id: String,
    /// The prompt.
    pub prompt: Vec<u32>,
    /// The chosen answer, after the prompt.
    pub chosen: Vec<u32>,
    /// 1 where a chosen token is scored.
    pub chosen_mask: Vec<u8>,
    /// The rejected answer, after the prompt.
    pub rejected: Vec<u32>,
    /// 1 where a rejected token is scored.
    pub rejected_mask: Vec<u8>,
}

const COLUMNS: [&str; 7] = [
    col::EXAMPLE_ID,
    col::TASK,
    col::INPUT_IDS,
    col::LOSS_MASK,
    col::PROMPT_TOKENS,
    col::REJECTED_IDS,
    col::REJECTED_MASK,
];

/// The `preference` rows of `dir/split/`, checked, in file and row order.
/// Other rows are passed over.
pub fn read_pairs(dir: &Path, split: &str) -> Result<Vec<PairTokens>, ReaderError> {
    let mut pairs = Vec::new();
    for path in part_files(&dir.join(split), split)? {
        for_each_batch(&path, &COLUMNS, &mut |batch, first_row| {
            append_pairs(&path, first_row, batch, &mut pairs)
        })?;
    }
    Ok(pairs)
}

fn append_pairs(
    path: &Path,
    first_row: usize,
    batch: &RecordBatch,
    out: &mut Vec<PairTokens>,
) -> Result<(), ReaderError> {
    let text = |name| typed(path, batch, name, |a| a.as_string_opt::<i32>());
    let (ids_col, tasks) = (text(col::EXAMPLE_ID)?, text(col::TASK)?);
    let prompt_tokens = typed(path, batch, col::PROMPT_TOKENS, |a| {
        a.as_primitive_opt::<Int32Type>()
    })?;
    let list = |name| list_column(path, batch, name);
    let (ids, mask) = (list(col::INPUT_IDS)?, list(col::LOSS_MASK)?);
    let (rejected, rejected_mask) = (list(col::REJECTED_IDS)?, list(col::REJECTED_MASK)?);
    let id_values = values_of::<Int32Type>(path, ids, col::INPUT_IDS)?;
    let mask_values = values_of::<Int8Type>(path, mask, col::LOSS_MASK)?;
    let rejected_values = values_of::<Int32Type>(path, rejected, col::REJECTED_IDS)?;
    let rejected_mask_values = values_of::<Int8Type>(path, rejected_mask, col::REJECTED_MASK)?;
    for r in 0..batch.num_rows() {
        if tasks.is_null(r) || tasks.value(r) != Task::Preference.as_str() {
            continue;
        }
        let at = || Location::File {
            path: path.to_owned(),
            row: first_row + r,
        };
        let null = |column| ReaderError::Null { at: at(), column };
        let ids = row_values(ids, id_values, r).ok_or_else(|| null(col::INPUT_IDS))?;
        let mask = row_values(mask, mask_values, r).ok_or_else(|| null(col::LOSS_MASK))?;
        let rejected =
            row_values(rejected, rejected_values, r).ok_or_else(|| null(col::REJECTED_IDS))?;
        let rejected_mask = row_values(rejected_mask, rejected_mask_values, r)
            .ok_or_else(|| null(col::REJECTED_MASK))?;
        if ids_col.is_null(r) || prompt_tokens.is_null(r) {
            return Err(null(col::PROMPT_TOKENS));
        }
        let pair = check_pair(
            ids_col.value(r),
            prompt_tokens.value(r),
            (ids, mask),
            (rejected, rejected_mask),
        )
        .map_err(|reason| ReaderError::InvalidPair { at: at(), reason })?;
        out.push(pair);
    }
    Ok(())
}

/// One row's pair, if its parts fit together: a prompt of at least one
/// token, answers of equal id and mask lengths with at least one scored
/// token each, ids and masks in range.
fn check_pair(
    example_id: &str,
    prompt_tokens: i32,
    (ids, mask): (&[i32], &[i8]),
    (rejected, rejected_mask): (&[i32], &[i8]),
) -> Result<PairTokens, String> {
    let cut = usize::try_from(prompt_tokens)
        .ok()
        .filter(|&n| n >= 1 && n < ids.len())
        .ok_or_else(|| {
            format!(
                "has prompt_tokens {prompt_tokens}, which must lie in 1..{} (its input_ids)",
                ids.len()
            )
        })?;
    if ids.len() != mask.len() || rejected.len() != rejected_mask.len() {
        return Err("has ids and masks of different lengths".into());
    }
    let tokens = |v: &[i32]| -> Result<Vec<u32>, String> {
        v.iter()
            .map(|&t| u32::try_from(t).map_err(|_| format!("has token id {t}, out of range")))
            .collect()
    };
    let bits = |v: &[i8], what: &str| -> Result<Vec<u8>, String> {
        let bits: Vec<u8> = v
            .iter()
            .map(|&m| u8::try_from(m).ok().filter(|&b| b <= 1))
            .collect::<Option<_>>()
            .ok_or_else(|| format!("has a {what} mask value other than 0 or 1"))?;
        if bits.contains(&1) {
            Ok(bits)
        } else {
            Err(format!("has no scored token in its {what} answer"))
        }
    };
    Ok(PairTokens {
        example_id: example_id.to_owned(),
        prompt: tokens(&ids[..cut])?,
        chosen: tokens(&ids[cut..])?,
        chosen_mask: bits(&mask[cut..], "chosen")?,
        rejected: tokens(rejected)?,
        rejected_mask: bits(rejected_mask, "rejected")?,
    })
}

/// One batch: indices into the reader's pairs (file order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairBatch {
    /// Epoch of every pair of the batch.
    pub epoch: u64,
    /// The pairs, as indices in file order.
    pub pairs: Vec<usize>,
    /// The reader's cursor after this batch.
    pub cursor_after: Cursor,
}

/// Streams one split's pairs in batches, forever, epoch after epoch.
#[derive(Debug)]
pub struct PairReader {
    pairs: Vec<PairTokens>,
    batch_size: usize,
    seed: u64,
    shuffle: bool,
    cursor: Cursor,
    order: Vec<usize>,
}

impl PairReader {
    /// A reader over `pairs` (at least one), `batch_size` pairs a batch.
    pub fn new(
        pairs: Vec<PairTokens>,
        batch_size: usize,
        seed: u64,
        shuffle: bool,
    ) -> Result<Self, ReaderError> {
        if pairs.is_empty() {
            return Err(ReaderError::NoDocuments);
        }
        if batch_size == 0 {
            return Err(ReaderError::InvalidConfig(
                "batch_size must be at least 1".into(),
            ));
        }
        let order = document_order(pairs.len(), seed, 0, shuffle);
        Ok(Self {
            pairs,
            batch_size,
            seed,
            shuffle,
            cursor: Cursor::default(),
            order,
        })
    }

    /// The pairs, in file order.
    pub fn pairs(&self) -> &[PairTokens] {
        &self.pairs
    }

    /// Where the reader is.
    pub fn cursor(&self) -> Cursor {
        self.cursor
    }

    /// Restores a saved cursor (its offset is always 0).
    pub fn seek(&mut self, cursor: Cursor) -> Result<(), ReaderError> {
        let n = self.pairs.len() as u64;
        if cursor.position >= n || cursor.offset != 0 {
            return Err(ReaderError::CursorOutOfRange {
                cursor,
                reason: format!("position must be below {n} pairs, offset 0"),
            });
        }
        if cursor.epoch != self.cursor.epoch {
            self.order = document_order(self.pairs.len(), self.seed, cursor.epoch, self.shuffle);
        }
        self.cursor = cursor;
        Ok(())
    }

    /// The next batch.
    pub fn next_batch(&mut self) -> PairBatch {
        let epoch = self.cursor.epoch;
        let start = self.cursor.position as usize;
        let end = (start + self.batch_size).min(self.pairs.len());
        let pairs = self.order[start..end].to_vec();
        self.cursor = if end == self.pairs.len() {
            let next = epoch.wrapping_add(1);
            self.order = document_order(self.pairs.len(), self.seed, next, self.shuffle);
            Cursor {
                epoch: next,
                ..Cursor::default()
            }
        } else {
            Cursor {
                epoch,
                position: end as u64,
                offset: 0,
            }
        };
        PairBatch {
            epoch,
            pairs,
            cursor_after: self.cursor,
        }
    }

    /// Batches in one epoch (the same in every epoch).
    pub fn batches_in_epoch(&self) -> u64 {
        self.pairs.len().div_ceil(self.batch_size) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(i: u32) -> PairTokens {
        PairTokens {
            example_id: format!("ex-{i}"),
            prompt: vec![i],
            chosen: vec![1],
            chosen_mask: vec![1],
            rejected: vec![2],
            rejected_mask: vec![1],
        }
    }

    #[test]
    fn epochs_visit_every_pair_once_and_resume_from_any_cursor() {
        let mut r = PairReader::new((0..7).map(pair).collect(), 3, 5, true).unwrap();
        assert_eq!(r.batches_in_epoch(), 3);
        let mut cursors = vec![r.cursor()];
        let mut batches = Vec::new();
        for _ in 0..6 {
            let b = r.next_batch();
            cursors.push(b.cursor_after);
            batches.push(b);
        }
        for epoch in 0..2 {
            let mut seen: Vec<usize> = batches[epoch * 3..epoch * 3 + 3]
                .iter()
                .flat_map(|b| b.pairs.clone())
                .collect();
            assert_eq!(batches[epoch * 3 + 2].pairs.len(), 1);
            seen.sort();
            assert_eq!(seen, (0..7).collect::<Vec<_>>());
        }
        assert_ne!(batches[0].pairs, batches[3].pairs, "each epoch reshuffles");
        for (k, c) in cursors.iter().enumerate().take(6) {
            let mut again = PairReader::new((0..7).map(pair).collect(), 3, 5, true).unwrap();
            again.seek(*c).unwrap();
            assert_eq!(again.next_batch(), batches[k]);
        }
        assert!(
            r.seek(Cursor {
                epoch: 0,
                position: 7,
                offset: 0
            })
            .is_err()
        );
    }

    #[test]
    fn a_pair_whose_parts_do_not_fit_is_refused() {
        let ok = check_pair("ex", 2, (&[5, 6, 7], &[0, 0, 1]), (&[8], &[1])).unwrap();
        assert_eq!(
            (ok.prompt, ok.chosen, ok.rejected),
            (vec![5, 6], vec![7], vec![8])
        );
        type Case<'a> = (i32, &'a [i32], &'a [i8], &'a [i32], &'a [i8], &'a str);
        let cases: [Case; 5] = [
            (3, &[5, 6, 7], &[0, 0, 1], &[8], &[1], "prompt_tokens 3"),
            (0, &[5, 6, 7], &[0, 0, 1], &[8], &[1], "prompt_tokens 0"),
            (
                1,
                &[5, 6, 7],
                &[0, 0, 0],
                &[8],
                &[1],
                "no scored token in its chosen",
            ),
            (1, &[5, 6, 7], &[0, 1, 1], &[8], &[2], "other than 0 or 1"),
            (
                1,
                &[5, 6, 7],
                &[0, 1, 1],
                &[8, 9],
                &[1],
                "different lengths",
            ),
        ];
        for (cut, ids, mask, rej, rej_mask, want) in cases {
            let err = check_pair("ex", cut, (ids, mask), (rej, rej_mask)).unwrap_err();
            assert!(err.contains(want), "{err}");
        }
    }
}
