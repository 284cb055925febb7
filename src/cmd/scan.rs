//! `clintune scan`: look for PHI in a dataset or an export.

use anyhow::{Context, bail};
use clap::Args;
use clintune_deid::policy::LoadedPolicy;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Arguments of `clintune scan`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    clintune scan datasets/curated                  # every text field of every split\n  \
    clintune scan checkpoints/notes/v3 --json       # configs, chat template, tokenizer vocabulary, card\n\n\
    Findings print one per line with file, place, category and the match masked (first character\n\
    and length); a summary by category follows. Synthetic or de-identified data still yields\n\
    findings (pseudonyms look like names): read them, don't count them.")]
pub struct ScanArgs {
    /// A directory: a curated dataset, an export, any model directory.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// The de-identification policy whose detector to run. Default: the
    /// built-in Safe Harbor policy.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// One JSON object per finding instead of text lines.
    #[arg(long)]
    json: bool,
    /// Exit with status 1 when anything is found.
    #[arg(long)]
    fail_on_findings: bool,
}

/// Runs `clintune scan`.
pub fn run(a: ScanArgs) -> anyhow::Result<()> {
    let policy = LoadedPolicy::from_arg(a.policy.as_deref())?;
    tracing::info!("policy: {}", policy.source);
    let scrubber = policy.scrubber()?;
    let report = clintune_deid::scan::scan(&a.dir, &scrubber)
        .with_context(|| format!("scanning {}", a.dir.display()))?;
    let mut by_category: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &report.findings {
        *by_category.entry(f.category).or_default() += 1;
        if a.json {
            println!("{}", serde_json::to_string(f)?);
        } else {
            println!(
                "{}: {}: {} ({}) {}",
                f.file, f.place, f.category, f.rule, f.masked
            );
        }
    }
    tracing::info!(
        "scanned {} files, {} strings: {} findings {:?}",
        report.files,
        report.strings,
        report.findings.len(),
        by_category
    );
    if a.fail_on_findings && !report.findings.is_empty() {
        bail!(
            "{} possible PHI findings in {}",
            report.findings.len(),
            a.dir.display()
        );
    }
    Ok(())
}
