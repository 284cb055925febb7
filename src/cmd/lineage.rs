//! `clintune lineage`: show and verify manifest chains.

use anyhow::Context;
use clap::Subcommand;
use std::path::PathBuf;

/// Lineage subcommands.
#[derive(Debug, Subcommand)]
pub enum LineageCommand {
    /// Print the chain of manifests from DIR down to the source files.
    Show {
        /// A stage's output directory (holding manifest.json).
        dir: PathBuf,
    },
    /// Recompute every hash along the chain; fail on the first mismatch, naming the file.
    Verify {
        /// A stage's output directory (holding manifest.json).
        dir: PathBuf,
    },
}

/// Runs a lineage subcommand.
pub fn run(cmd: LineageCommand) -> anyhow::Result<()> {
    match cmd {
        LineageCommand::Show { dir } => {
            let text = clintune_lineage::show::render_chain(&dir)
                .with_context(|| format!("reading the lineage of {}", dir.display()))?;
            std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes())?;
        }
        LineageCommand::Verify { dir } => {
            let r = clintune_lineage::verify_chain(&dir)
                .with_context(|| format!("lineage verification of {} failed", dir.display()))?;
            println!(
                "verified: {} manifest(s), {} file(s) match their recorded SHA-256; {} input(s) not on disk or recorded under a pseudonym, not checked",
                r.manifests, r.files_checked, r.inputs_not_found
            );
        }
    }
    Ok(())
}
