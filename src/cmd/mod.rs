//! One module per subcommand.

/// Prints a line of a command's summary (what it did, where it wrote),
/// unless `-q` was given. A command's output proper (`score`'s JSON lines,
/// `lineage show`, `deid eval`'s scores) uses `println!`.
macro_rules! summary {
    ($($arg:tt)*) => {
        if !$crate::cmd::quiet() {
            println!($($arg)*);
        }
    };
}

pub mod audit;
pub mod bench;
pub mod curate;
pub mod deid;
pub mod eval;
pub mod export;
pub mod generate;
pub mod init_model;
pub mod keygen;
pub mod lineage;
pub mod orchestrator;
pub mod recipe;
pub mod release;
pub mod report;
pub mod run;
pub mod scan;
pub mod score;
pub mod tokenizer;
pub mod train;

use anyhow::Context;
use burn::tensor::DType;
use burn::tensor::backend::Backend;
use clap::ValueEnum;
use clintune_model::{Llama, ModelConfig, WeightFiles};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set from `-q` before any command runs.
static QUIET: AtomicBool = AtomicBool::new(false);

/// Makes [`summary!`] print nothing (`-q`).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// True under `-q`.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// The Hugging Face model in `dir`, on `device`, with its config.
fn load_model<B: Backend>(
    dir: &Path,
    device: &B::Device,
) -> anyhow::Result<(ModelConfig, Llama<B>)> {
    let config = ModelConfig::load(dir)?;
    let weights = WeightFiles::open(dir)?;
    let model = Llama::load(&config, &weights, device)
        .with_context(|| format!("loading {}", dir.display()))?;
    Ok((config, model))
}

/// `--precision`: the dtype activations are computed in (weights stay f32).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
enum PrecisionArg {
    #[default]
    F32,
    Bf16,
}

impl PrecisionArg {
    fn dtype(self) -> DType {
        match self {
            PrecisionArg::F32 => DType::F32,
            PrecisionArg::Bf16 => DType::BF16,
        }
    }

    fn name(self) -> &'static str {
        match self {
            PrecisionArg::F32 => "f32",
            PrecisionArg::Bf16 => "bf16",
        }
    }
}
