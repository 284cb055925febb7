//! One module per subcommand.

pub mod bench;
pub mod curate;
pub mod deid;
pub mod export;
pub mod generate;
pub mod init_model;
pub mod keygen;
pub mod lineage;
pub mod orchestrator;
pub mod recipe;
pub mod run;
pub mod scan;
pub mod score;
pub mod tokenizer;
pub mod train;

use anyhow::Context;
use clintune_model::{Cpu, Llama, ModelConfig, WeightFiles};
use std::path::Path;

/// The Hugging Face model in `dir`, on the CPU, with its config.
fn load_cpu_model(dir: &Path) -> anyhow::Result<(ModelConfig, Llama<Cpu>)> {
    let config = ModelConfig::load(dir)?;
    let weights = WeightFiles::open(dir)?;
    let model = Llama::load(&config, &weights, &Default::default())
        .with_context(|| format!("loading {}", dir.display()))?;
    Ok((config, model))
}
