//! `clintune export`: a finished run becomes a versioned Hugging Face model.

use clap::{Args, ValueEnum};
use clintune_export::{ExportOptions, export};
use clintune_model::save::SaveDtype;
use std::path::PathBuf;

/// Arguments of `clintune export`.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  \
    clintune export runs/run --name notes-assistant     # writes checkpoints/notes-assistant/v1/\n\n\
    Each export is a new version (v1, v2, …) that is never overwritten; checkpoints/NAME/index.json\n\
    lists them. A version holds model.safetensors (LoRA merged), config.json, generation_config.json,\n\
    tokenizer files with the chat template, adapter/ (LoRA runs: PEFT format), README.md (model card)\n\
    and manifest.json, whose parent is the run: `clintune lineage verify` checks the whole chain.")]
pub struct ExportArgs {
    /// A finished `clintune train` run directory (with its manifest.json).
    #[arg(value_name = "RUN_DIR")]
    run: PathBuf,
    /// The model name; versions go to ROOT/NAME/vN/.
    #[arg(long, short = 'n')]
    name: String,
    /// The export root.
    #[arg(long, default_value = "checkpoints", value_name = "DIR")]
    root: PathBuf,
    /// Element type of the exported weights.
    #[arg(long, value_enum, default_value_t = Dtype::Bf16)]
    dtype: Dtype,
}

/// Element type of exported weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Dtype {
    Bf16,
    F32,
}

/// Runs `clintune export`.
pub fn run(a: ExportArgs) -> anyhow::Result<()> {
    let opts = ExportOptions {
        root: a.root,
        name: a.name,
        dtype: match a.dtype {
            Dtype::Bf16 => SaveDtype::Bf16,
            Dtype::F32 => SaveDtype::F32,
        },
    };
    let done = export(&a.run, &opts)?;
    tracing::info!(
        "exported {} v{} to {} (manifest {}){}",
        opts.name,
        done.version,
        done.dir.display(),
        done.manifest_id,
        if done.adapter {
            "; LoRA adapter in adapter/"
        } else {
            ""
        }
    );
    Ok(())
}
