//! One module per subcommand.

pub mod curate;
pub mod deid;
pub mod export;
pub mod generate;
pub mod init_model;
pub mod keygen;
pub mod lineage;
pub mod recipe;
pub mod run;
pub mod scan;
pub mod score;
pub mod tokenizer;
pub mod train;
