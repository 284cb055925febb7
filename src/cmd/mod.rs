//! One module per subcommand.

pub mod curate;
pub mod deid;
pub mod export;
pub mod generate;
pub mod keygen;
pub mod lineage;
pub mod recipe;
pub mod score;
pub mod tokenizer;
pub mod train;
