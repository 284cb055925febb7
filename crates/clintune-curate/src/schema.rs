//! The Parquet schema of a curated dataset.
//!
//! One row per example. A dataset directory holds one folder per split
//! (`train/`, `validation/`, `test/`) of `part-NNNNN.parquet` files.
//!
//! A `preference` row is one pair: `input_ids` and `loss_mask` hold its prompt
//! followed by the chosen answer (so it is also an ordinary example of the
//! preferred answer), `prompt_tokens` where the prompt ends, and
//! `rejected_ids` / `rejected_mask` the rejected answer after that prompt.

use arrow_schema::{DataType, Field, Schema};
use std::sync::Arc;

/// Version of the dataset schema, written to each file's key-value metadata.
/// Version 2 added the preference pair columns (`prompt_tokens`,
/// `rejected_ids`, `rejected_mask`); readers of version 1 columns read both.
pub const SCHEMA_VERSION: &str = "2";

/// Key-value metadata key holding the dataset id.
pub const META_DATASET_ID: &str = "clintune.dataset_id";
/// Key-value metadata key holding the stage name (`curate`).
pub const META_STAGE: &str = "clintune.stage";
/// Key-value metadata key holding [`SCHEMA_VERSION`].
pub const META_SCHEMA_VERSION: &str = "clintune.schema_version";

/// The splits, in the order they are written.
pub const SPLITS: [&str; 3] = ["train", "validation", "test"];

/// Column names.
pub mod col {
    /// Example id: `ex-` and 32 hex digits of a SHA-256 over task, patient key and text.
    pub const EXAMPLE_ID: &str = "example_id";
    /// Pseudonymous patient key (from de-identification).
    pub const PATIENT_KEY: &str = "patient_key";
    /// `train`, `validation` or `test`.
    pub const SPLIT: &str = "split";
    /// Task that built the example (`timeline`, `next-diagnosis`, `chat`).
    pub const TASK: &str = "task";
    /// The example as rendered text (chat examples through the chat template).
    pub const TEXT: &str = "text";
    /// Token ids, `list<int32>`.
    pub const INPUT_IDS: &str = "input_ids";
    /// Per-token loss mask, `list<int8>`: 1 where the token is trained on.
    pub const LOSS_MASK: &str = "loss_mask";
    /// Number of tokens, `int32`.
    pub const NUM_TOKENS: &str = "num_tokens";
    /// Pseudonymous keys of the de-identified records the example was built from.
    pub const RECORD_KEYS: &str = "record_keys";
    /// Of a `preference` row, `int32`: how many leading `input_ids` are the
    /// prompt (the rest are the chosen answer); 0 on other rows.
    pub const PROMPT_TOKENS: &str = "prompt_tokens";
    /// Of a `preference` row, `list<int32>`: the rejected answer's token ids,
    /// which continue the same prompt; empty on other rows.
    pub const REJECTED_IDS: &str = "rejected_ids";
    /// Of a `preference` row, `list<int8>`: 1 where a rejected answer's token
    /// is scored; empty on other rows.
    pub const REJECTED_MASK: &str = "rejected_mask";
}

/// The Arrow schema of a dataset file.
pub fn schema() -> Arc<Schema> {
    let list = |name: &str, item: DataType| {
        Field::new(
            name,
            DataType::List(Arc::new(Field::new("item", item, false))),
            false,
        )
    };
    Arc::new(Schema::new(vec![
        Field::new(col::EXAMPLE_ID, DataType::Utf8, false),
        Field::new(col::PATIENT_KEY, DataType::Utf8, false),
        Field::new(col::SPLIT, DataType::Utf8, false),
        Field::new(col::TASK, DataType::Utf8, false),
        Field::new(col::TEXT, DataType::Utf8, false),
        list(col::INPUT_IDS, DataType::Int32),
        list(col::LOSS_MASK, DataType::Int8),
        Field::new(col::NUM_TOKENS, DataType::Int32, false),
        list(col::RECORD_KEYS, DataType::Utf8),
        Field::new(col::PROMPT_TOKENS, DataType::Int32, false),
        list(col::REJECTED_IDS, DataType::Int32),
        list(col::REJECTED_MASK, DataType::Int8),
    ]))
}
