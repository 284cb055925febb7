//! The Parquet schema of a curated dataset.
//!
//! One row per example. A dataset directory holds one folder per split
//! (`train/`, `validation/`, `test/`) of `part-NNNNN.parquet` files.

use arrow_schema::{DataType, Field, Schema};
use std::sync::Arc;

/// Version of the dataset schema, written to each file's key-value metadata.
pub const SCHEMA_VERSION: &str = "1";

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
    ]))
}
