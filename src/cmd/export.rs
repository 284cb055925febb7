//! `clintune export`: a finished run becomes a versioned Hugging Face model.

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use clintune_export::{ExportOptions, export};
use clintune_model::save::SaveDtype;
use std::path::PathBuf;

/// Arguments of `clintune export`.
#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Example:\n  \
    clintune export runs/run --name notes-assistant     # writes checkpoints/notes-assistant/v1/\n\n\
    Each export is a new version (v1, v2, …) that is never overwritten; checkpoints/NAME/index.json\n\
    lists them. A version holds model.safetensors (LoRA merged), config.json, generation_config.json,\n\
    tokenizer files with the chat template, adapter/ (LoRA runs: PEFT format), README.md (model card)\n\
    and manifest.json, whose parent is the run. `clintune export verify DIR` re-reads a version."
)]
pub struct ExportArgs {
    #[command(subcommand)]
    command: Option<ExportCommand>,
    /// A finished `clintune train` run directory (with its manifest.json).
    #[arg(value_name = "RUN_DIR", required = true)]
    run: Option<PathBuf>,
    /// The model name; versions go to ROOT/NAME/vN/.
    #[arg(long, short = 'n', required = true)]
    name: Option<String>,
    /// The export root.
    #[arg(long, default_value = "checkpoints", value_name = "DIR")]
    root: PathBuf,
    /// Element type of the exported weights.
    #[arg(long, value_enum, default_value_t = Dtype::Bf16)]
    dtype: Dtype,
    /// Largest weight file, in MB; larger models are split into shards with
    /// model.safetensors.index.json (0: one file).
    #[arg(long, value_name = "MB", default_value_t = 5000.0)]
    max_shard_mb: f64,
}

/// `clintune export …`.
#[derive(Debug, Subcommand)]
enum ExportCommand {
    /// Re-read an export: every hash down to the source records, every tensor's name,
    /// shape and dtype against config.json, and the adapter against adapter_config.json.
    Verify {
        /// An export version directory (ROOT/NAME/vN).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

/// Element type of exported weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Dtype {
    Bf16,
    F32,
}

/// Runs `clintune export`.
pub fn run(a: ExportArgs) -> anyhow::Result<()> {
    if let Some(ExportCommand::Verify { dir }) = a.command {
        return verify(&dir);
    }
    let run = a.run.context("give the run directory")?;
    let opts = ExportOptions {
        root: a.root,
        name: a.name.context("give --name")?,
        dtype: match a.dtype {
            Dtype::Bf16 => SaveDtype::Bf16,
            Dtype::F32 => SaveDtype::F32,
        },
        max_shard_bytes: (a.max_shard_mb.max(0.0) * 1e6) as u64,
    };
    let done = export(&run, &opts)?;
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

fn verify(dir: &std::path::Path) -> anyhow::Result<()> {
    let r = clintune_export::verify::verify(dir)?;
    summary!(
        "verified: {} manifest(s), {} file(s) match their SHA-256; {} model tensors and {} adapter tensors match config.json",
        r.lineage.manifests,
        r.lineage.files_checked,
        r.tensors,
        r.adapter_tensors
    );
    Ok(())
}
