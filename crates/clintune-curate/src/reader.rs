//! Reads a curated split back as packed fixed-length sequences for a causal
//! LM trainer, with a cursor that makes every batch reproducible.
//!
//! # Packing
//!
//! Each epoch visits every document of the split once, in an order that is a
//! permutation drawn from `(seed, epoch)` alone (file order when shuffling is
//! off). Rows of `seq_len` tokens are filled greedily in that order:
//!
//! - a document that fits in the row's remaining space goes in;
//! - one that does not fit starts the next row, and the rest of the current
//!   row is padding (`pad_id`, segment 0, position 0, mask 0);
//! - a document longer than `seq_len` starts on a fresh row and is cut into
//!   `seq_len`-token pieces; its last, shorter piece may be followed by other
//!   documents. Every piece is its own segment with positions from 0, so
//!   attention and targets never cross a piece or document boundary.
//!
//! With `pack = false` every document starts a fresh row and the rest of its
//! last row is padding: one document per row, as unpacked trainers do.
//!
//! # Epoch boundaries
//!
//! Batches never mix epochs: when an epoch's last document is placed, the rest
//! of that row and any remaining rows of the batch are padding, and the next
//! batch starts the next epoch's order. The last batch of an epoch may
//! therefore hold all-padding rows, but every batch holds at least one token.
//! This keeps an evaluation pass over a split exact (no document is seen twice)
//! and lets [`PackedReader::batches_in_epoch`] be exact.
//!
//! # Resuming
//!
//! Every batch starts on a fresh row, so the [`Cursor`] (epoch, index into the
//! epoch's order, tokens of that document already emitted) is the reader's
//! whole state: [`PackedReader::seek`] to a saved cursor, with the same
//! documents and [`PackConfig`], reproduces exactly the batches an
//! uninterrupted reader would have produced next.

use crate::rng::{GOLDEN_GAMMA, SplitMix64, mix64};
use crate::schema::{col, schema};
use arrow_array::cast::AsArray;
use arrow_array::types::{ArrowPrimitiveType, Int8Type, Int32Type};
use arrow_array::{Array, ListArray, PrimitiveArray, RecordBatch, StringArray};
use arrow_schema::{ArrowError, DataType, Schema};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::errors::ParquetError;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// How a split is packed into batches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackConfig {
    /// Tokens per row.
    pub seq_len: usize,
    /// Rows per batch.
    pub batch_size: usize,
    /// Seed of the per-epoch document order.
    pub seed: u64,
    /// Shuffle documents each epoch; `false` keeps file order. Defaults to `true`.
    #[serde(default = "default_shuffle")]
    pub shuffle: bool,
    /// Token id written into padding.
    pub pad_id: u32,
    /// Put several documents in a row; `false` gives each its own rows.
    /// Defaults to `true`.
    #[serde(default = "default_shuffle")]
    pub pack: bool,
}

/// The default of `shuffle` and `pack`.
fn default_shuffle() -> bool {
    true
}

impl PackConfig {
    fn validate(&self) -> Result<(), ReaderError> {
        if self.seq_len == 0 || self.batch_size == 0 {
            return Err(ReaderError::InvalidConfig(
                "seq_len and batch_size must be at least 1".to_owned(),
            ));
        }
        // Positions and segment ids are u32, and a row can hold seq_len segments.
        if u32::try_from(self.seq_len).is_err() {
            return Err(ReaderError::InvalidConfig(format!(
                "seq_len {} does not fit in u32",
                self.seq_len
            )));
        }
        Ok(())
    }
}

/// Where the reader is; saved in trainer checkpoints.
///
/// Only meaningful for the same documents and [`PackConfig`] it came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cursor {
    /// Epoch of the next batch.
    pub epoch: u64,
    /// Index into this epoch's document order of the next document.
    pub position: u64,
    /// Tokens of that document already emitted (a multiple of `seq_len`,
    /// non-zero only inside a document longer than `seq_len`).
    pub offset: u64,
}

/// One contiguous run of a document's tokens placed in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// Row of the batch.
    pub row: usize,
    /// First column of the piece in that row.
    pub column: usize,
    /// Segment id of the piece in that row (1, 2, …).
    pub segment: u32,
    /// Index of the document in the split's file order (see [`PackedReader::example_id`]).
    pub document: usize,
    /// Index within the document of the piece's first token.
    pub doc_offset: u64,
    /// Number of tokens.
    pub len: usize,
}

/// One batch; every per-token vector is row-major `[batch_size, seq_len]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedBatch {
    /// Rows.
    pub batch_size: usize,
    /// Tokens per row.
    pub seq_len: usize,
    /// Token id used for padding (and as the target past each row's end).
    pub pad_id: u32,
    /// Epoch every row of this batch belongs to.
    pub epoch: u64,
    /// Token ids; `pad_id` on padding.
    pub tokens: Vec<u32>,
    /// Position within the segment, restarting at 0 at each segment start; 0 on padding.
    pub positions: Vec<u32>,
    /// 1, 2, 3, … per document piece within a row; 0 on padding.
    pub segment_ids: Vec<u32>,
    /// The stored per-token loss mask (1 = train on this token); 0 on padding.
    pub loss_mask: Vec<u8>,
    /// Every piece placed, in row and column order; for debugging and accounting.
    pub pieces: Vec<Piece>,
    /// The reader's cursor after this batch.
    pub cursor_after: Cursor,
}

impl PackedBatch {
    fn padded(cfg: &PackConfig, epoch: u64) -> Self {
        let n = cfg.batch_size * cfg.seq_len;
        PackedBatch {
            batch_size: cfg.batch_size,
            seq_len: cfg.seq_len,
            pad_id: cfg.pad_id,
            epoch,
            tokens: vec![cfg.pad_id; n],
            positions: vec![0; n],
            segment_ids: vec![0; n],
            loss_mask: vec![0; n],
            pieces: Vec::new(),
            cursor_after: Cursor::default(),
        }
    }

    fn place(&mut self, piece: Piece, docs: &Documents) {
        let start = piece.row * self.seq_len + piece.column;
        let dst = start..start + piece.len;
        let src = docs.range(piece.document, piece.doc_offset, piece.len);
        self.tokens[dst.clone()].copy_from_slice(&docs.tokens[src.clone()]);
        self.loss_mask[dst.clone()].copy_from_slice(&docs.mask[src]);
        self.segment_ids[dst.clone()].fill(piece.segment);
        // seq_len fits in u32 (checked by PackConfig::validate), so this never wraps.
        for (p, i) in self.positions[dst].iter_mut().zip(0u32..) {
            *p = i;
        }
        self.pieces.push(piece);
    }

    /// Number of non-padding tokens.
    pub fn real_tokens(&self) -> usize {
        self.pieces.iter().map(|p| p.len).sum()
    }

    /// Targets for next-token prediction: `target[t] = tokens[t+1]`, weight 1
    /// only where `t` and `t+1` are in the same segment (never across a
    /// document or piece boundary, never into padding) and `loss_mask[t+1]`
    /// is 1. The last column of each row targets `pad_id` with weight 0.
    /// Returns `(targets, weights)`, flat, in the batch's shape.
    pub fn shifted_targets(&self) -> (Vec<u32>, Vec<u8>) {
        let n = self.tokens.len();
        let mut targets = vec![self.pad_id; n];
        let mut weights = vec![0u8; n];
        let width = self.seq_len.max(1);
        for row_start in (0..n).step_by(width) {
            let row_end = (row_start + width).min(n);
            for t in row_start..row_end.saturating_sub(1) {
                targets[t] = self.tokens[t + 1];
                let segment = self.segment_ids[t];
                let same = segment != 0 && segment == self.segment_ids[t + 1];
                weights[t] = u8::from(same && self.loss_mask[t + 1] == 1);
            }
        }
        (targets, weights)
    }
}

/// Where a bad document was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A row (0-based, counted over the whole file) of a Parquet file.
    File {
        /// The file.
        path: PathBuf,
        /// The row.
        row: usize,
    },
    /// An in-memory document given to [`PackedReader::from_documents`] (0-based).
    Document {
        /// Its index.
        index: usize,
    },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File { path, row } => write!(f, "{} row {row}", path.display()),
            Location::Document { index } => write!(f, "document {index}"),
        }
    }
}

/// Why a split could not be read or a cursor restored.
#[derive(Debug, thiserror::Error)]
pub enum ReaderError {
    /// The [`PackConfig`] cannot be packed with.
    #[error("invalid pack config: {0}")]
    InvalidConfig(String),
    /// The split's folder does not exist.
    #[error("split `{split}` not found: {} is not a directory", path.display())]
    MissingSplit {
        /// The split asked for.
        split: String,
        /// The folder looked for.
        path: PathBuf,
    },
    /// The split's folder holds no documents.
    #[error("split `{split}` has no documents in {}", path.display())]
    EmptySplit {
        /// The split asked for.
        split: String,
        /// Its folder.
        path: PathBuf,
    },
    /// Two reads of one split found other examples (it was written to
    /// between them).
    #[error("split `{split}` in {} changed while it was read; read it again", path.display())]
    SplitChanged {
        /// The split.
        split: String,
        /// The dataset.
        path: PathBuf,
    },
    /// [`PackedReader::from_documents`] was given no documents.
    #[error("no documents given")]
    NoDocuments,
    /// A file or folder could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not Parquet, is truncated, or its metadata is unreadable.
    #[error("{} is not a readable Parquet file: {source}", path.display())]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: ParquetError,
    },
    /// A file's rows could not be decoded.
    #[error("cannot decode rows of {}: {source}", path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: ArrowError,
    },
    /// A file lacks a column the reader needs.
    #[error("{} has no column `{column}`", path.display())]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The column.
        column: &'static str,
    },
    /// A column has a type other than the dataset schema's.
    #[error("{}: column `{column}` is {found}, expected {expected}", path.display())]
    WrongType {
        /// The file.
        path: PathBuf,
        /// The column.
        column: &'static str,
        /// Its type in the file.
        found: String,
        /// Its type in [`crate::schema::schema`].
        expected: String,
    },
    /// A value that must be present is null.
    #[error("{at}: `{column}` is null")]
    Null {
        /// Where.
        at: Location,
        /// The column.
        column: &'static str,
    },
    /// `input_ids` and `loss_mask` have different lengths.
    #[error("{at}: input_ids has {ids} tokens but loss_mask has {mask}")]
    LengthMismatch {
        /// Where.
        at: Location,
        /// Length of `input_ids`.
        ids: usize,
        /// Length of `loss_mask`.
        mask: usize,
    },
    /// `num_tokens` disagrees with the length of `input_ids`.
    #[error("{at}: num_tokens is {num_tokens} but input_ids has {ids} tokens")]
    NumTokensMismatch {
        /// Where.
        at: Location,
        /// The stored count.
        num_tokens: i32,
        /// Length of `input_ids`.
        ids: usize,
    },
    /// A document has no tokens; it could never be trained on and would
    /// make a batch without tokens possible.
    #[error("{at}: document has no tokens")]
    EmptyDocument {
        /// Where.
        at: Location,
    },
    /// A token id is not a valid `u32`.
    #[error("{at}: token id {value} is out of range")]
    InvalidToken {
        /// Where.
        at: Location,
        /// The value.
        value: i64,
    },
    /// A loss-mask value is neither 0 nor 1.
    #[error("{at}: loss_mask value {value} is not 0 or 1")]
    InvalidMask {
        /// Where.
        at: Location,
        /// The value.
        value: i64,
    },
    /// A preference row whose parts do not fit together.
    #[error("{at}: preference pair {reason}")]
    InvalidPair {
        /// Where.
        at: Location,
        /// What is wrong with it.
        reason: String,
    },
    /// A cursor does not point into this reader's documents.
    #[error("cursor {cursor:?} is out of range: {reason}")]
    CursorOutOfRange {
        /// The cursor.
        cursor: Cursor,
        /// What is wrong with it.
        reason: String,
    },
}

/// All documents of a split, flat, so that millions of small documents cost
/// three allocations rather than millions.
#[derive(Default)]
pub(crate) struct Documents {
    tokens: Vec<u32>,
    mask: Vec<u8>,
    /// `offsets[d]..offsets[d + 1]` are document `d`'s tokens.
    offsets: Vec<u64>,
    /// Example ids, concatenated; empty for in-memory documents.
    ids: String,
    id_ends: Vec<usize>,
}

impl Documents {
    fn new() -> Self {
        Documents {
            offsets: vec![0],
            ..Documents::default()
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    fn doc_len(&self, doc: usize) -> u64 {
        self.offsets[doc + 1] - self.offsets[doc]
    }

    /// Document `doc`'s token ids and loss mask.
    pub(crate) fn document(&self, doc: usize) -> (&[u32], &[u8]) {
        let range = self.range(doc, 0, self.doc_len(doc) as usize);
        (&self.tokens[range.clone()], &self.mask[range])
    }

    fn range(&self, doc: usize, from: u64, len: usize) -> Range<usize> {
        // The offsets index `tokens`, which lives in memory, so they fit in usize.
        let start = (self.offsets[doc] + from) as usize;
        start..start + len
    }

    /// Appends one document after checking it; `at` names it in errors and
    /// is only built on failure, as most rows are fine.
    fn push<I, M>(
        &mut self,
        ids: &[I],
        mask: &[M],
        at: impl Fn() -> Location,
    ) -> Result<(), ReaderError>
    where
        I: Copy + Into<i64>,
        M: Copy + Into<i64>,
    {
        if ids.len() != mask.len() {
            return Err(ReaderError::LengthMismatch {
                at: at(),
                ids: ids.len(),
                mask: mask.len(),
            });
        }
        if ids.is_empty() {
            return Err(ReaderError::EmptyDocument { at: at() });
        }
        for &id in ids {
            let value = id.into();
            let token =
                u32::try_from(value).map_err(|_| ReaderError::InvalidToken { at: at(), value })?;
            self.tokens.push(token);
        }
        for &m in mask {
            let bit = match m.into() {
                0 => 0,
                1 => 1,
                value => return Err(ReaderError::InvalidMask { at: at(), value }),
            };
            self.mask.push(bit);
        }
        self.offsets.push(self.tokens.len() as u64);
        Ok(())
    }

    fn push_id(&mut self, id: &str) {
        self.ids.push_str(id);
        self.id_ends.push(self.ids.len());
    }

    pub(crate) fn example_id(&self, doc: usize) -> Option<&str> {
        let end = *self.id_ends.get(doc)?;
        let start = if doc == 0 { 0 } else { self.id_ends[doc - 1] };
        self.ids.get(start..end)
    }
}

/// Streams one split as packed batches, forever, epoch after epoch.
pub struct PackedReader {
    cfg: PackConfig,
    docs: Documents,
    cursor: Cursor,
    /// Document order of `cursor.epoch`.
    order: Vec<usize>,
}

impl fmt::Debug for PackedReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The documents themselves would drown any log line.
        f.debug_struct("PackedReader")
            .field("cfg", &self.cfg)
            .field("documents", &self.num_documents())
            .field("tokens", &self.num_tokens())
            .field("cursor", &self.cursor)
            .finish()
    }
}

impl PackedReader {
    /// Reads every `part-*.parquet` file of `dir/split/`, sorted by name.
    ///
    /// Errors name the file (and row where relevant): missing split folder,
    /// not Parquet or truncated, missing column or wrong type, null values,
    /// `input_ids` and `loss_mask` of different lengths, `num_tokens`
    /// disagreeing, negative token ids, mask values other than 0/1, empty
    /// documents; and a split without documents.
    pub fn open(dir: &Path, split: &str, cfg: PackConfig) -> Result<Self, ReaderError> {
        cfg.validate()?;
        let docs = read_documents(dir, split)?;
        if docs.len() == 0 {
            return Err(ReaderError::EmptySplit {
                split: split.to_owned(),
                path: dir.join(split),
            });
        }
        Ok(Self::new(docs, cfg))
    }

    /// Builds a reader from in-memory documents `(input_ids, loss_mask)`,
    /// checked as [`PackedReader::open`] checks rows.
    pub fn from_documents(
        documents: Vec<(Vec<u32>, Vec<u8>)>,
        cfg: PackConfig,
    ) -> Result<Self, ReaderError> {
        cfg.validate()?;
        if documents.is_empty() {
            return Err(ReaderError::NoDocuments);
        }
        let mut docs = Documents::new();
        for (index, (ids, mask)) in documents.iter().enumerate() {
            docs.push(ids, mask, || Location::Document { index })?;
        }
        Ok(Self::new(docs, cfg))
    }

    fn new(docs: Documents, cfg: PackConfig) -> Self {
        let order = document_order(docs.len(), cfg.seed, 0, cfg.shuffle);
        PackedReader {
            cfg,
            docs,
            cursor: Cursor::default(),
            order,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &PackConfig {
        &self.cfg
    }

    /// Number of documents in the split.
    pub fn num_documents(&self) -> usize {
        self.docs.len()
    }

    /// How many documents are longer than a row (`seq_len`), and the
    /// longest document's length: such documents are cut into pieces, and a
    /// later piece is trained on without the start of its document.
    pub fn documents_over_seq_len(&self) -> (usize, u64) {
        let lengths = (0..self.docs.len()).map(|d| self.docs.doc_len(d));
        let longest = lengths.clone().max().unwrap_or(0);
        let over = lengths.filter(|&l| l > self.cfg.seq_len as u64).count();
        (over, longest)
    }

    /// Number of tokens over all documents (one epoch's worth).
    pub fn num_tokens(&self) -> u64 {
        self.docs.tokens.len() as u64
    }

    /// The example id of a document (index in file order, as in
    /// [`Piece::document`]); `None` for in-memory documents or out of range.
    pub fn example_id(&self, document: usize) -> Option<&str> {
        self.docs.example_id(document)
    }

    /// Where the reader is: the next batch is fully determined by this.
    pub fn cursor(&self) -> Cursor {
        self.cursor
    }

    /// Restores a saved cursor. Errors if its position is not below the
    /// number of documents, or its offset is not a multiple of `seq_len`
    /// below that document's length.
    pub fn seek(&mut self, cursor: Cursor) -> Result<(), ReaderError> {
        let out_of_range = |reason: String| ReaderError::CursorOutOfRange { cursor, reason };
        let n = self.docs.len();
        let position = usize::try_from(cursor.position)
            .ok()
            .filter(|&p| p < n)
            .ok_or_else(|| out_of_range(format!("position must be below {n} documents")))?;
        let order = self.order_of(cursor.epoch);
        let len = self.docs.doc_len(order[position]);
        let seq_len = self.cfg.seq_len as u64;
        if cursor.offset >= len || !cursor.offset.is_multiple_of(seq_len) {
            return Err(out_of_range(format!(
                "offset must be a multiple of seq_len {seq_len} below the document's {len} tokens"
            )));
        }
        if let Cow::Owned(order) = order {
            self.order = order;
        }
        self.cursor = cursor;
        Ok(())
    }

    /// The next batch. Epochs roll over forever; each starts a new document
    /// order, and a batch never mixes epochs (see the module docs).
    pub fn next_batch(&mut self) -> PackedBatch {
        let epoch = self.cursor.epoch;
        let mut batch = PackedBatch::padded(&self.cfg, epoch);
        let mut at = (self.cursor.position as usize, self.cursor.offset);
        let mut epoch_done = false;
        for row in 0..self.cfg.batch_size {
            let docs = &self.docs;
            epoch_done = pack_row(docs, &self.order, &self.cfg, row, &mut at, |piece| {
                batch.place(piece, docs)
            });
            if epoch_done {
                break;
            }
        }
        self.cursor = if epoch_done {
            let next = epoch.wrapping_add(1);
            self.order = document_order(self.docs.len(), self.cfg.seed, next, self.cfg.shuffle);
            Cursor {
                epoch: next,
                position: 0,
                offset: 0,
            }
        } else {
            Cursor {
                epoch,
                position: at.0 as u64,
                offset: at.1,
            }
        };
        batch.cursor_after = self.cursor;
        batch
    }

    /// Exact number of batches in `epoch`. Greedy packing depends on the
    /// order, so with shuffling this can differ slightly between epochs.
    /// Costs one shuffle and one pass over document lengths (no token is
    /// copied): cheap next to training on the epoch, but not free.
    pub fn batches_in_epoch(&self, epoch: u64) -> u64 {
        let order = self.order_of(epoch);
        let mut at = (0, 0);
        let mut rows = 0u64;
        loop {
            rows += 1;
            if pack_row(&self.docs, &order, &self.cfg, 0, &mut at, |_| {}) {
                break;
            }
        }
        rows.div_ceil(self.cfg.batch_size as u64)
    }

    fn order_of(&self, epoch: u64) -> Cow<'_, [usize]> {
        if epoch == self.cursor.epoch {
            Cow::Borrowed(&self.order)
        } else {
            let order = document_order(self.docs.len(), self.cfg.seed, epoch, self.cfg.shuffle);
            Cow::Owned(order)
        }
    }
}

/// Greedily fills one row from `at` (index into `order`, tokens of that
/// document already emitted), reporting each piece to `emit`. Returns true
/// when the row placed the epoch's last document, which ends the row.
fn pack_row(
    docs: &Documents,
    order: &[usize],
    cfg: &PackConfig,
    row: usize,
    at: &mut (usize, u64),
    mut emit: impl FnMut(Piece),
) -> bool {
    let seq_len = cfg.seq_len;
    let mut column = 0;
    let mut segment = 0;
    loop {
        let document = order[at.0];
        let remaining = docs.doc_len(document) - at.1;
        let space = seq_len - column;
        let len = if remaining <= space as u64 {
            remaining as usize
        } else if column == 0 {
            seq_len
        } else {
            // Splitting it here would cost it context; the next row has room.
            return false;
        };
        segment += 1;
        emit(Piece {
            row,
            column,
            segment,
            document,
            doc_offset: at.1,
            len,
        });
        column += len;
        if (len as u64) < remaining {
            at.1 += len as u64;
            return false;
        }
        *at = (at.0 + 1, 0);
        if at.0 == order.len() {
            return true;
        }
        if column == seq_len || !cfg.pack {
            return false;
        }
    }
}

/// Document order of one epoch: a permutation that depends on
/// `(seed, epoch)` only, so a cursor stays valid across processes and machines.
pub fn document_order(n: usize, seed: u64, epoch: u64, shuffle: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if shuffle {
        let mut rng = SplitMix64(mix64(seed ^ mix64(epoch.wrapping_add(GOLDEN_GAMMA))));
        // Fisher–Yates.
        for i in (1..n).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
    }
    order
}

/// The split's part files, sorted by name; other files (temporaries, notes)
/// are ignored.
pub(crate) fn part_files(split_dir: &Path, split: &str) -> Result<Vec<PathBuf>, ReaderError> {
    if !split_dir.is_dir() {
        return Err(ReaderError::MissingSplit {
            split: split.to_owned(),
            path: split_dir.to_owned(),
        });
    }
    let io = |source| ReaderError::Io {
        path: split_dir.to_owned(),
        source,
    };
    let mut parts = Vec::new();
    for entry in std::fs::read_dir(split_dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("part-") && name.ends_with(".parquet") && path.is_file() {
            parts.push(path);
        }
    }
    parts.sort();
    Ok(parts)
}

/// Columns the reader needs.
const READ_COLUMNS: [&str; 4] = [
    col::EXAMPLE_ID,
    col::INPUT_IDS,
    col::LOSS_MASK,
    col::NUM_TOKENS,
];

/// A prompt and the answer recorded for it, as token ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptAnswer {
    /// The tokens before the first trained one (the rendered prompt, up to
    /// the assistant's generation prompt).
    pub prompt: Vec<u32>,
    /// The trained tokens that follow it: the first answer, its end-of-turn
    /// marker included.
    pub answer: Vec<u32>,
}

/// The prompts of `dir/split/` and their first answers, in file and row
/// order: every example whose first token is untrained and that trains on
/// some later token (chat and next-diagnosis examples; plain text, trained
/// from its first token, has no prompt).
pub fn read_prompts(dir: &Path, split: &str) -> Result<Vec<PromptAnswer>, ReaderError> {
    let docs = read_documents(dir, split)?;
    Ok((0..docs.len())
        .filter_map(|d| {
            let (ids, mask) = docs.document(d);
            let start = mask.iter().position(|&m| m == 1).filter(|&s| s > 0)?;
            let len = mask[start..].iter().take_while(|&&m| m == 1).count();
            Some(PromptAnswer {
                prompt: ids[..start].to_vec(),
                answer: ids[start..start + len].to_vec(),
            })
        })
        .collect())
}

/// Every document of `dir/split/`, checked, in file and row order.
pub(crate) fn read_documents(dir: &Path, split: &str) -> Result<Documents, ReaderError> {
    let mut docs = Documents::new();
    for path in part_files(&dir.join(split), split)? {
        for_each_batch(&path, &READ_COLUMNS, &mut |batch, first_row| {
            append_batch(&path, first_row, batch, &mut docs)
        })?;
    }
    Ok(docs)
}

/// Calls `each` with every record batch of the part file `path` and the
/// file row of its first row, reading only `columns`, whose types are
/// checked against the dataset schema first.
pub(crate) fn for_each_batch(
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
    let roots = column_roots(path, builder.schema(), columns)?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let batches = builder.with_projection(mask).build().map_err(parquet_err)?;
    let mut first_row = 0;
    for batch in batches {
        let batch = batch.map_err(|source| ReaderError::Decode {
            path: path.to_owned(),
            source,
        })?;
        each(&batch, first_row)?;
        first_row += batch.num_rows();
    }
    Ok(())
}

/// Indices in `found` of `columns`, after checking their types against the
/// dataset schema.
fn column_roots(
    path: &Path,
    found: &Schema,
    columns: &[&'static str],
) -> Result<Vec<usize>, ReaderError> {
    let expected = schema();
    let mut roots = Vec::new();
    for &name in columns {
        let (index, field) =
            found
                .column_with_name(name)
                .ok_or_else(|| ReaderError::MissingColumn {
                    path: path.to_owned(),
                    column: name,
                })?;
        let want = expected.field_with_name(name).map(|f| f.data_type());
        if let Ok(want) = want
            && !same_type(field.data_type(), want)
        {
            return Err(wrong_type(path, name, field.data_type(), want));
        }
        roots.push(index);
    }
    Ok(roots)
}

/// Type equality that ignores the name and nullability of list items, which
/// differ between Parquet writers without changing the data.
fn same_type(found: &DataType, expected: &DataType) -> bool {
    match (found, expected) {
        (DataType::List(a), DataType::List(b)) => a.data_type() == b.data_type(),
        _ => found == expected,
    }
}

fn wrong_type(
    path: &Path,
    column: &'static str,
    found: &DataType,
    expected: &DataType,
) -> ReaderError {
    ReaderError::WrongType {
        path: path.to_owned(),
        column,
        found: found.to_string(),
        expected: expected.to_string(),
    }
}

/// The columns of one record batch, typed.
struct Columns<'a> {
    example_id: &'a StringArray,
    ids: &'a ListArray,
    id_values: &'a PrimitiveArray<Int32Type>,
    mask: &'a ListArray,
    mask_values: &'a PrimitiveArray<Int8Type>,
    num_tokens: &'a PrimitiveArray<Int32Type>,
}

impl<'a> Columns<'a> {
    fn of(path: &Path, batch: &'a RecordBatch) -> Result<Self, ReaderError> {
        let ids = list_column(path, batch, col::INPUT_IDS)?;
        let mask = list_column(path, batch, col::LOSS_MASK)?;
        Ok(Columns {
            example_id: typed(path, batch, col::EXAMPLE_ID, |a| a.as_string_opt::<i32>())?,
            ids,
            id_values: values_of(path, ids, col::INPUT_IDS)?,
            mask,
            mask_values: values_of(path, mask, col::LOSS_MASK)?,
            num_tokens: typed(path, batch, col::NUM_TOKENS, |a| {
                a.as_primitive_opt::<Int32Type>()
            })?,
        })
    }
}

/// A column downcast with `cast`; column_roots already checked the types, so
/// a failure here is a file that lies about its schema, still not a panic.
pub(crate) fn typed<'a, T: ?Sized>(
    path: &Path,
    batch: &'a RecordBatch,
    name: &'static str,
    cast: impl Fn(&'a dyn Array) -> Option<&'a T>,
) -> Result<&'a T, ReaderError> {
    let array = batch
        .column_by_name(name)
        .ok_or_else(|| ReaderError::MissingColumn {
            path: path.to_owned(),
            column: name,
        })?;
    let expected = schema();
    let want = expected
        .field_with_name(name)
        .map(|f| f.data_type().clone());
    cast(array.as_ref()).ok_or_else(|| {
        wrong_type(
            path,
            name,
            array.data_type(),
            &want.unwrap_or(DataType::Null),
        )
    })
}

pub(crate) fn list_column<'a>(
    path: &Path,
    batch: &'a RecordBatch,
    name: &'static str,
) -> Result<&'a ListArray, ReaderError> {
    typed(path, batch, name, |a| a.as_list_opt::<i32>())
}

pub(crate) fn values_of<'a, T: ArrowPrimitiveType>(
    path: &Path,
    list: &'a ListArray,
    name: &'static str,
) -> Result<&'a PrimitiveArray<T>, ReaderError> {
    list.values()
        .as_primitive_opt::<T>()
        .ok_or_else(|| ReaderError::WrongType {
            path: path.to_owned(),
            column: name,
            found: list.data_type().to_string(),
            expected: format!("list of {}", T::DATA_TYPE),
        })
}

/// One row's values of a list column; `None` if the row or any item is null.
pub(crate) fn row_values<'a, T: ArrowPrimitiveType>(
    list: &ListArray,
    values: &'a PrimitiveArray<T>,
    row: usize,
) -> Option<&'a [T::Native]> {
    if list.is_null(row) {
        return None;
    }
    let offsets = list.value_offsets();
    // Arrow validates list offsets as non-negative and within the values.
    let range = offsets[row] as usize..offsets[row + 1] as usize;
    if values.null_count() > 0 && range.clone().any(|j| values.is_null(j)) {
        return None;
    }
    Some(&values.values()[range])
}

fn append_batch(
    path: &Path,
    first_row: usize,
    batch: &RecordBatch,
    docs: &mut Documents,
) -> Result<(), ReaderError> {
    let c = Columns::of(path, batch)?;
    for r in 0..batch.num_rows() {
        let at = || Location::File {
            path: path.to_owned(),
            row: first_row + r,
        };
        let null = |column| ReaderError::Null { at: at(), column };
        let ids = row_values(c.ids, c.id_values, r).ok_or_else(|| null(col::INPUT_IDS))?;
        let mask = row_values(c.mask, c.mask_values, r).ok_or_else(|| null(col::LOSS_MASK))?;
        if c.example_id.is_null(r) {
            return Err(null(col::EXAMPLE_ID));
        }
        if c.num_tokens.is_null(r) {
            return Err(null(col::NUM_TOKENS));
        }
        docs.push(ids, mask, at)?;
        let num_tokens = c.num_tokens.value(r);
        if usize::try_from(num_tokens).ok() != Some(ids.len()) {
            return Err(ReaderError::NumTokensMismatch {
                at: at(),
                num_tokens,
                ids: ids.len(),
            });
        }
        docs.push_id(c.example_id.value(r));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::builder::{Int8Builder, Int32Builder, ListBuilder, StringBuilder};
    use arrow_array::{ArrayRef, Int32Array};
    use arrow_schema::{Field, FieldRef};
    use parquet::arrow::ArrowWriter;
    use std::collections::HashMap;
    use std::sync::Arc;

    /// Lengths chosen to exercise every packing case at `seq_len` 8: exact
    /// fits, documents that must move to the next row, and long documents
    /// whose pieces span rows (20, 17, 30, 9).
    const LENGTHS: [usize; 14] = [3, 5, 8, 1, 20, 2, 9, 17, 4, 6, 7, 30, 2, 1];

    /// Token ids encode (document, index) so a row can be decoded back.
    fn token(doc: usize, j: usize) -> u32 {
        ((doc + 1) * 1000 + j) as u32
    }

    fn decode(token: u32) -> (usize, usize) {
        (token as usize / 1000 - 1, token as usize % 1000)
    }

    fn mask_bit(doc: usize, j: usize) -> u8 {
        u8::from(!(doc + j).is_multiple_of(4))
    }

    fn docs() -> Vec<(Vec<u32>, Vec<u8>)> {
        LENGTHS
            .iter()
            .enumerate()
            .map(|(d, &n)| {
                let ids = (0..n).map(|j| token(d, j)).collect();
                let mask = (0..n).map(|j| mask_bit(d, j)).collect();
                (ids, mask)
            })
            .collect()
    }

    fn cfg(seed: u64) -> PackConfig {
        PackConfig {
            seq_len: 8,
            batch_size: 3,
            seed,
            shuffle: true,
            pack: true,
            pad_id: 0,
        }
    }

    fn reader(cfg: PackConfig) -> PackedReader {
        PackedReader::from_documents(docs(), cfg).unwrap()
    }

    /// Batches of one whole epoch, checking that none strays into another.
    fn epoch_batches(r: &mut PackedReader) -> Vec<PackedBatch> {
        let epoch = r.cursor().epoch;
        let mut out = Vec::new();
        loop {
            let b = r.next_batch();
            assert_eq!(b.epoch, epoch);
            out.push(b);
            if r.cursor().epoch != epoch {
                return out;
            }
        }
    }

    #[test]
    fn resuming_from_any_saved_cursor_reproduces_the_run() {
        let mut r = reader(cfg(7));
        let mut batches = Vec::new();
        let mut cursors = Vec::new();
        for _ in 0..32 {
            let b = r.next_batch();
            assert_eq!(b.cursor_after, r.cursor());
            cursors.push(r.cursor());
            batches.push(b);
        }
        assert!(cursors[20].epoch >= 2, "the run must span several epochs");
        assert!(
            cursors.iter().any(|c| c.offset > 0),
            "no cursor inside a long document"
        );
        assert!(cursors.iter().any(|c| c.epoch > 0 && c.position == 0));
        for k in 0..=20 {
            let json = serde_json::to_string(&cursors[k]).unwrap();
            let saved: Cursor = serde_json::from_str(&json).unwrap();
            assert_eq!(saved, cursors[k]);
            let mut fresh = reader(cfg(7));
            fresh.seek(saved).unwrap();
            // Seeking back on a reader that has moved on must work too.
            r.seek(saved).unwrap();
            for expected in &batches[k + 1..k + 11] {
                assert_eq!(&fresh.next_batch(), expected);
                assert_eq!(&r.next_batch(), expected);
            }
        }
    }

    #[test]
    fn segments_restart_exactly_at_document_and_piece_starts() {
        let mut r = reader(cfg(3));
        for _ in 0..40 {
            let b = r.next_batch();
            for row in 0..b.batch_size {
                check_row(&b, row);
            }
            check_pieces(&b);
        }
    }

    fn check_row(b: &PackedBatch, row: usize) {
        let base = row * b.seq_len;
        let mut padding = false;
        for t in base..base + b.seq_len {
            if b.segment_ids[t] == 0 {
                padding = true;
                assert_eq!((b.tokens[t], b.positions[t], b.loss_mask[t]), (0, 0, 0));
                continue;
            }
            assert!(!padding, "a document after padding in a row");
            let (doc, j) = decode(b.tokens[t]);
            assert_eq!(b.loss_mask[t], mask_bit(doc, j));
            // Pieces of long documents start at multiples of seq_len.
            assert!((j - b.positions[t] as usize).is_multiple_of(b.seq_len));
            if t == base {
                assert_eq!((b.segment_ids[t], b.positions[t]), (1, 0));
                continue;
            }
            let (prev_doc, prev_j) = decode(b.tokens[t - 1]);
            let continues = prev_doc == doc && prev_j + 1 == j;
            assert_eq!(b.positions[t] != 0, continues);
            if continues {
                assert_eq!(b.segment_ids[t], b.segment_ids[t - 1]);
                assert_eq!(b.positions[t], b.positions[t - 1] + 1);
            } else {
                assert_eq!(b.segment_ids[t], b.segment_ids[t - 1] + 1);
            }
        }
    }

    fn check_pieces(b: &PackedBatch) {
        for p in &b.pieces {
            let start = p.row * b.seq_len + p.column;
            for i in 0..p.len {
                assert_eq!(
                    decode(b.tokens[start + i]),
                    (p.document, p.doc_offset as usize + i)
                );
                assert_eq!(b.segment_ids[start + i], p.segment);
            }
        }
        let real = b.segment_ids.iter().filter(|&&s| s != 0).count();
        assert_eq!(b.real_tokens(), real);
        assert!(real > 0, "every batch holds a token");
    }

    #[test]
    fn shifted_targets_stay_inside_segments_and_respect_the_mask() {
        let mut r = reader(cfg(11));
        let mut weighted = 0;
        for _ in 0..30 {
            let b = r.next_batch();
            let (targets, weights) = b.shifted_targets();
            assert_eq!(
                (targets.len(), weights.len()),
                (b.tokens.len(), b.tokens.len())
            );
            for t in 0..b.tokens.len() {
                let last = (t + 1) % b.seq_len == 0;
                let expected = !last
                    && b.segment_ids[t] != 0
                    && b.segment_ids[t + 1] == b.segment_ids[t]
                    && b.loss_mask[t + 1] == 1;
                assert_eq!(weights[t] == 1, expected, "column {t}");
                if last {
                    assert_eq!((targets[t], weights[t]), (b.pad_id, 0));
                } else {
                    assert_eq!(targets[t], b.tokens[t + 1]);
                }
                if weights[t] == 1 {
                    let ((d0, j0), (d1, j1)) = (decode(b.tokens[t]), decode(targets[t]));
                    assert_eq!((d0, j0 + 1), (d1, j1));
                    weighted += 1;
                }
            }
        }
        assert!(weighted > 0);
    }

    #[test]
    fn every_token_appears_exactly_once_per_epoch() {
        for shuffle in [true, false] {
            let mut r = reader(PackConfig { shuffle, ..cfg(5) });
            for epoch in 0..4 {
                let expected_batches = r.batches_in_epoch(epoch);
                let batches = epoch_batches(&mut r);
                assert_eq!(batches.len() as u64, expected_batches);
                let mut seen: HashMap<u32, usize> = HashMap::new();
                for b in &batches {
                    for (&t, &s) in b.tokens.iter().zip(&b.segment_ids) {
                        if s != 0 {
                            *seen.entry(t).or_default() += 1;
                        }
                    }
                }
                assert_eq!(seen.len() as u64, r.num_tokens());
                assert!(seen.values().all(|&n| n == 1));
                assert_eq!(
                    r.cursor(),
                    Cursor {
                        epoch: epoch + 1,
                        position: 0,
                        offset: 0
                    }
                );
            }
        }
    }

    #[test]
    fn order_depends_on_seed_and_epoch_only() {
        let order = |seed, epoch| document_order(100, seed, epoch, true);
        assert_eq!(order(1, 0), order(1, 0));
        assert_ne!(order(1, 0), order(2, 0));
        assert_ne!(order(1, 0), order(1, 1));
        let mut sorted = order(1, 3);
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_eq!(document_order(5, 1, 0, false), vec![0, 1, 2, 3, 4]);

        let firsts = |seed| {
            let mut r = reader(cfg(seed));
            (0..10).map(|_| r.next_batch()).collect::<Vec<_>>()
        };
        assert_eq!(firsts(1), firsts(1));
        assert_ne!(firsts(1), firsts(2));
    }

    #[test]
    fn unshuffled_reader_packs_in_file_order() {
        let mut r = reader(PackConfig {
            shuffle: false,
            ..cfg(0)
        });
        let batches = epoch_batches(&mut r);
        let docs: Vec<usize> = batches
            .iter()
            .flat_map(|b| &b.pieces)
            .map(|p| p.document)
            .collect();
        assert_eq!(docs[0], 0);
        assert!(docs.windows(2).all(|w| w[0] <= w[1]));
        // Row 0 holds documents 0 (3 tokens) and 1 (5 tokens) exactly.
        let first = &batches[0];
        assert_eq!(&first.segment_ids[..8], &[1, 1, 1, 2, 2, 2, 2, 2]);
        assert_eq!(&first.positions[..8], &[0, 1, 2, 0, 1, 2, 3, 4]);
    }

    #[test]
    fn seek_rejects_cursors_out_of_range() {
        let mut r = reader(PackConfig {
            shuffle: false,
            ..cfg(0)
        });
        let bad = [
            Cursor {
                epoch: 0,
                position: LENGTHS.len() as u64,
                offset: 0,
            },
            Cursor {
                epoch: 0,
                position: 4,
                offset: 3,
            },
            Cursor {
                epoch: 0,
                position: 4,
                offset: 24,
            },
            Cursor {
                epoch: 0,
                position: 0,
                offset: 8,
            },
        ];
        for c in bad {
            let err = r.seek(c).unwrap_err();
            assert!(matches!(err, ReaderError::CursorOutOfRange { .. }), "{err}");
        }
        assert_eq!(r.cursor(), Cursor::default());
        r.seek(Cursor {
            epoch: 9,
            position: 4,
            offset: 16,
        })
        .unwrap();
        let b = r.next_batch();
        assert_eq!(b.epoch, 9);
        assert_eq!(decode(b.tokens[0]), (4, 16));
    }

    #[test]
    fn config_and_cursor_serde() {
        let c: PackConfig =
            serde_json::from_str(r#"{"seq_len":8,"batch_size":2,"seed":1,"pad_id":0}"#).unwrap();
        assert!(c.shuffle);
        let unknown = r#"{"seq_len":8,"batch_size":2,"seed":1,"pad_id":0,"extra":1}"#;
        assert!(serde_json::from_str::<PackConfig>(unknown).is_err());
        let cursor = Cursor {
            epoch: 3,
            position: 5,
            offset: 16,
        };
        let json = serde_json::to_string(&cursor).unwrap();
        assert_eq!(json, r#"{"epoch":3,"position":5,"offset":16}"#);
        assert_eq!(serde_json::from_str::<Cursor>(&json).unwrap(), cursor);
    }

    #[test]
    fn documents_longer_than_a_row_are_counted() {
        let doc = |n: usize| (vec![1; n], vec![1; n]);
        let r =
            PackedReader::from_documents(vec![doc(3), doc(8), doc(9), doc(20)], cfg(0)).unwrap();
        assert_eq!(r.documents_over_seq_len(), (2, 20));
        let r = PackedReader::from_documents(vec![doc(8)], cfg(0)).unwrap();
        assert_eq!(r.documents_over_seq_len(), (0, 8));
    }

    #[test]
    fn from_documents_checks_its_input() {
        let bad_config = PackConfig {
            seq_len: 0,
            ..cfg(0)
        };
        assert!(matches!(
            PackedReader::from_documents(docs(), bad_config),
            Err(ReaderError::InvalidConfig(_))
        ));
        assert!(matches!(
            PackedReader::from_documents(Vec::new(), cfg(0)),
            Err(ReaderError::NoDocuments)
        ));
        let cases = [
            (
                vec![(vec![1, 2], vec![1, 1]), (vec![1, 2], vec![1])],
                "document 1: input_ids has 2",
            ),
            (vec![(vec![], vec![])], "document 0: document has no tokens"),
            (vec![(vec![1], vec![2])], "document 0: loss_mask value 2"),
        ];
        for (docs, message) in cases {
            let err = PackedReader::from_documents(docs, cfg(0)).unwrap_err();
            assert!(err.to_string().starts_with(message), "{err}");
        }
    }

    // ---- Parquet ----

    type Row = (Vec<i32>, Vec<i8>);

    fn item_field(name: &str) -> FieldRef {
        match schema().field_with_name(name).unwrap().data_type() {
            DataType::List(item) => item.clone(),
            other => panic!("{name} is {other}"),
        }
    }

    /// Every column of the dataset schema, with dummy strings where the
    /// reader does not look.
    fn columns(rows: &[Row]) -> Vec<ArrayRef> {
        let mut ids = ListBuilder::new(Int32Builder::new()).with_field(item_field(col::INPUT_IDS));
        let mut mask = ListBuilder::new(Int8Builder::new()).with_field(item_field(col::LOSS_MASK));
        let mut keys =
            ListBuilder::new(StringBuilder::new()).with_field(item_field(col::RECORD_KEYS));
        for (i, m) in rows {
            ids.values().append_slice(i);
            ids.append(true);
            mask.values().append_slice(m);
            mask.append(true);
            keys.values().append_value("rec-0");
            keys.append(true);
        }
        let strings = |prefix: &str| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(
                (0..rows.len()).map(|r| format!("{prefix}{r}")),
            ))
        };
        let num_tokens = rows.iter().map(|(i, _)| i.len() as i32);
        let mut rejected =
            ListBuilder::new(Int32Builder::new()).with_field(item_field(col::REJECTED_IDS));
        let mut rejected_mask =
            ListBuilder::new(Int8Builder::new()).with_field(item_field(col::REJECTED_MASK));
        for _ in rows {
            rejected.append(true);
            rejected_mask.append(true);
        }
        vec![
            strings("ex-"),
            strings("patient-"),
            strings("train"),
            strings("timeline"),
            strings("text "),
            Arc::new(ids.finish()),
            Arc::new(mask.finish()),
            Arc::new(Int32Array::from_iter_values(num_tokens)),
            Arc::new(keys.finish()),
            Arc::new(Int32Array::from_iter_values(rows.iter().map(|_| 0))),
            Arc::new(rejected.finish()),
            Arc::new(rejected_mask.finish()),
        ]
    }

    fn write(path: &Path, schema: Arc<Schema>, columns: Vec<ArrayRef>) {
        let batch = RecordBatch::try_new(schema.clone(), columns).unwrap();
        let mut writer = ArrowWriter::try_new(File::create(path).unwrap(), schema, None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }

    fn write_part(path: &Path, rows: &[Row]) {
        write(path, schema(), columns(rows));
    }

    fn split_dir(root: &Path) -> PathBuf {
        let dir = root.join("train");
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn unpacked_rows_hold_one_document_each() {
        let docs = vec![
            (vec![1, 2, 3], vec![1, 1, 1]),
            (vec![4, 5], vec![1, 1]),
            (vec![6; 11], vec![1; 11]),
        ];
        let cfg = PackConfig {
            shuffle: false,
            pack: false,
            batch_size: 4,
            ..cfg(0)
        };
        let mut r = PackedReader::from_documents(docs, cfg).unwrap();
        let batch = r.next_batch();
        let rows: Vec<(usize, usize, usize)> = batch
            .pieces
            .iter()
            .map(|p| (p.row, p.document, p.len))
            .collect();
        // The 11-token document takes a full row and 3 tokens of the next.
        assert_eq!(rows, [(0, 0, 3), (1, 1, 2), (2, 2, 8), (3, 2, 3)]);
        assert!(batch.pieces.iter().all(|p| p.column == 0));
    }

    #[test]
    fn open_reads_part_files_in_name_order() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = split_dir(tmp.path());
        write_part(
            &dir.join("part-00001.parquet"),
            &[(vec![7, 8, 9], vec![0, 1, 1])],
        );
        write_part(
            &dir.join("part-00000.parquet"),
            &[(vec![1, 2], vec![1, 0]), (vec![3], vec![1])],
        );
        std::fs::write(dir.join("notes.txt"), "not a part").unwrap();
        let cfg = PackConfig {
            shuffle: false,
            ..cfg(0)
        };
        let mut r = PackedReader::open(tmp.path(), "train", cfg).unwrap();
        assert_eq!((r.num_documents(), r.num_tokens()), (3, 6));
        assert_eq!(r.example_id(0), Some("ex-0"));
        assert_eq!(r.example_id(2), Some("ex-0"));
        assert_eq!(r.example_id(3), None);
        let b = r.next_batch();
        assert_eq!(&b.tokens[..8], &[1, 2, 3, 7, 8, 9, 0, 0]);
        assert_eq!(&b.loss_mask[..8], &[1, 0, 1, 0, 1, 1, 0, 0]);
        assert_eq!(&b.segment_ids[..8], &[1, 1, 2, 3, 3, 3, 0, 0]);
        assert_eq!(
            b.cursor_after,
            Cursor {
                epoch: 1,
                position: 0,
                offset: 0
            }
        );
    }

    #[test]
    fn truncated_file_is_an_error_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = split_dir(tmp.path());
        let good = dir.join("part-00000.parquet");
        write_part(&good, &[(vec![1, 2], vec![1, 1])]);
        let bytes = std::fs::read(&good).unwrap();
        let bad = dir.join("part-00001.parquet");
        std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
        let err = PackedReader::open(tmp.path(), "train", cfg(0)).unwrap_err();
        assert!(matches!(err, ReaderError::Parquet { .. }), "{err}");
        assert!(err.to_string().contains("part-00001.parquet"), "{err}");
    }

    #[test]
    fn length_mismatch_names_file_and_row() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = split_dir(tmp.path());
        let rows = [(vec![1, 2], vec![1, 1]), (vec![3, 4, 5], vec![1, 1])];
        write_part(&dir.join("part-00000.parquet"), &rows);
        let err = PackedReader::open(tmp.path(), "train", cfg(0)).unwrap_err();
        let ReaderError::LengthMismatch {
            at,
            ids: 3,
            mask: 2,
        } = &err
        else {
            panic!("{err}");
        };
        assert_eq!(
            at,
            &Location::File {
                path: dir.join("part-00000.parquet"),
                row: 1
            }
        );
        assert!(
            err.to_string().contains("part-00000.parquet row 1"),
            "{err}"
        );
    }

    #[test]
    fn missing_column_and_wrong_type_name_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = split_dir(tmp.path());
        let path = dir.join("part-00000.parquet");
        let full = schema();
        let keep = |name: &str| full.field_with_name(name).unwrap().clone();
        let rows = [(vec![1], vec![1])];
        let all = columns(&rows);
        let partial = Schema::new(vec![keep(col::EXAMPLE_ID), keep(col::INPUT_IDS)]);
        write(
            &path,
            Arc::new(partial),
            vec![all[0].clone(), all[5].clone()],
        );
        let err = PackedReader::open(tmp.path(), "train", cfg(0)).unwrap_err();
        assert!(
            matches!(
                err,
                ReaderError::MissingColumn {
                    column: "loss_mask",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("part-00000.parquet"), "{err}");

        // num_tokens written as utf8.
        let mut fields: Vec<Field> = full.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields[7] = Field::new(col::NUM_TOKENS, DataType::Utf8, false);
        let mut cols = all;
        cols[7] = Arc::new(StringArray::from(vec!["1"]));
        write(&path, Arc::new(Schema::new(fields)), cols);
        let err = PackedReader::open(tmp.path(), "train", cfg(0)).unwrap_err();
        assert!(
            matches!(
                err,
                ReaderError::WrongType {
                    column: "num_tokens",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn missing_or_empty_split_is_an_error_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        let err = PackedReader::open(tmp.path(), "validation", cfg(0)).unwrap_err();
        assert!(matches!(err, ReaderError::MissingSplit { .. }), "{err}");
        assert!(err.to_string().contains("`validation`"), "{err}");

        split_dir(tmp.path());
        let err = PackedReader::open(tmp.path(), "train", cfg(0)).unwrap_err();
        assert!(matches!(err, ReaderError::EmptySplit { .. }), "{err}");
        assert!(err.to_string().contains("`train`"), "{err}");
    }

    #[test]
    fn not_parquet_and_negative_tokens_are_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = split_dir(tmp.path());
        std::fs::write(dir.join("part-00000.parquet"), b"hello").unwrap();
        let err = PackedReader::open(tmp.path(), "train", cfg(0)).unwrap_err();
        assert!(matches!(err, ReaderError::Parquet { .. }), "{err}");

        write_part(
            &dir.join("part-00000.parquet"),
            &[(vec![1, -2], vec![1, 1])],
        );
        let err = PackedReader::open(tmp.path(), "train", cfg(0)).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("row 0: token id -2 is out of range"),
            "{err}"
        );
    }
}
