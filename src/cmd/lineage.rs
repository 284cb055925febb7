//! `clintune lineage`: show and verify manifest chains.

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use std::path::PathBuf;

/// Lineage subcommands.
#[derive(Debug, Subcommand)]
pub enum LineageCommand {
    /// Print the chain of manifests from DIR down to the source files.
    Show {
        /// A stage's output directory (holding manifest.json).
        dir: PathBuf,
        /// `text` for people; `openlineage`: one OpenLineage run event (JSON) per
        /// stage and line, source records first, for a data catalog to ingest.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Recompute every hash along the chain; fail on the first mismatch, naming the file.
    Verify {
        /// A stage's output directory (holding manifest.json).
        dir: PathBuf,
    },
}

/// How `lineage show` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Indented text.
    Text,
    /// OpenLineage run events, one JSON object per line.
    Openlineage,
}

/// Runs a lineage subcommand.
pub fn run(cmd: LineageCommand) -> anyhow::Result<()> {
    match cmd {
        LineageCommand::Show { dir, format } => {
            let context = || format!("reading the lineage of {}", dir.display());
            let text = match format {
                Format::Text => clintune_lineage::show::render_chain(&dir).with_context(context)?,
                Format::Openlineage => clintune_lineage::openlineage::events(&dir)
                    .with_context(context)?
                    .iter()
                    .map(|e| e.to_string() + "\n")
                    .collect(),
            };
            std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes())?;
        }
        LineageCommand::Verify { dir } => {
            let r = clintune_lineage::verify_chain(&dir)
                .with_context(|| format!("lineage verification of {} failed", dir.display()))?;
            let built_in = match r.inputs_built_in {
                0 => String::new(),
                n => format!("; {n} built into clintune (the default policy), known by hash"),
            };
            summary!(
                "verified: {} manifest(s), {} file(s) match their recorded SHA-256; {} input(s) not on disk or recorded under a pseudonym, not checked{built_in}",
                r.manifests,
                r.files_checked,
                r.inputs_not_found
            );
        }
    }
    Ok(())
}
