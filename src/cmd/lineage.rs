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
    ///
    /// Parents that are not on this machine (an export copied to another
    /// site) are listed as not available here, by id; the directory's own
    /// files and manifest are still checked.
    Verify {
        /// A stage's output directory (holding manifest.json).
        dir: PathBuf,
        /// Fail when a parent is not on disk instead of listing it.
        #[arg(long)]
        require_parents: bool,
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
        LineageCommand::Verify {
            dir,
            require_parents,
        } => {
            let opts = clintune_lineage::VerifyOptions { require_parents };
            let r = clintune_lineage::verify_chain_with(&dir, opts)
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
            for (stage, id) in &r.parents_not_here {
                summary!(
                    "not available here: parent {stage} {id} (its id is recorded; verify it where it is)"
                );
            }
        }
    }
    Ok(())
}
