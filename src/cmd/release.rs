//! `clintune release`: the release gate and the approval record.

use anyhow::Context;
use clap::Args;
use clintune_deid::policy::LoadedPolicy;
use clintune_lineage::Manifest;
use clintune_validate::eval::manifest_of;
use clintune_validate::gate::{
    Decision, GateInputs, ReleasePolicy, check_all, decide, write_record,
};
use std::path::{Path, PathBuf};

/// Arguments of `clintune release`.
#[derive(Debug, Args)]
#[command(after_help = "\
Runs every check and refuses, writing nothing, if any fails, naming each failure:
  lineage       the export's files, tensors and manifest chain verify
  scan          no PHI finding in the categories the policy forbids
  eval          an evaluation of this export on held-out patients (clintune eval), no task
                worse than its baseline beyond the policy's margin
  memorization  an audit of this export (clintune audit memorization), canary exposure and
                extraction gap within the policy's limits

When all pass, writes the approval (OUT/release.json: who, when, the policy, each check with the
hashes of what it read) as a lineage stage `release` whose parents are the export, the evaluation
and the audit; `clintune lineage verify OUT` checks it. An approval is never overwritten.

Example:
  clintune release checkpoints/quickstart/v1 --eval evals/quickstart-v1 \\
      --audit audits/quickstart-v1 --reviewer \"A. Reviewer\" --note \"pilot, ward 4 only\"")]
pub struct ReleaseArgs {
    /// The export to release (`checkpoints/NAME/vN`).
    #[arg(value_name = "EXPORT")]
    export: PathBuf,
    /// Who takes the decision; recorded in the approval.
    #[arg(long, value_name = "NAME")]
    reviewer: String,
    /// A note recorded with the approval.
    #[arg(long, value_name = "TEXT")]
    note: Option<String>,
    /// What the export must show. Default: the built-in policy, as
    /// recipes/release.toml documents it.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// A `clintune eval` output for this export.
    #[arg(long, value_name = "DIR")]
    eval: Option<PathBuf>,
    /// A `clintune audit memorization` output for this export.
    #[arg(long, value_name = "DIR")]
    audit: Option<PathBuf>,
    /// Where the approval goes. Default: beside the export, `vN-release`.
    #[arg(long, short = 'o', value_name = "DIR")]
    out: Option<PathBuf>,
}

/// Runs `clintune release`.
pub fn run(a: ReleaseArgs) -> anyhow::Result<()> {
    let policy = match &a.policy {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            ReleasePolicy::parse(&text).with_context(|| format!("policy {}", path.display()))?
        }
        None => ReleasePolicy::default(),
    };
    if a.reviewer.trim().is_empty() {
        anyhow::bail!("--reviewer must name who decides");
    }
    let out = a.out.clone().unwrap_or_else(|| default_out(&a.export));
    let scrubber = LoadedPolicy::from_arg(None)?.scrubber()?;
    let inputs = GateInputs {
        export: &a.export,
        eval: a.eval.as_deref(),
        audit: a.audit.as_deref(),
        scrubber: &scrubber,
    };
    let checks = check_all(&policy, &inputs);
    let decided = Decision {
        reviewer: a.reviewer.trim().to_string(),
        note: a.note.clone(),
        decided_at: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    };
    let record = decide(&a.export, policy, checks, decided)?;
    let parents = parents(&[
        Some(a.export.as_path()),
        a.eval.as_deref(),
        a.audit.as_deref(),
    ])?;
    let manifest = write_record(&out, &record, &parents)?;
    for c in &record.checks {
        summary!("passed  {:<13} {}", c.name, c.detail);
    }
    summary!(
        "approved by {}: {} (manifest {})",
        record.decided.reviewer,
        out.join("release.json").display(),
        manifest.id
    );
    Ok(())
}

/// `checkpoints/NAME/vN` → `checkpoints/NAME/vN-release`.
fn default_out(export: &Path) -> PathBuf {
    let name = export
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "export".into());
    export.with_file_name(format!("{name}-release"))
}

fn parents(dirs: &[Option<&Path>]) -> anyhow::Result<Vec<(Manifest, PathBuf)>> {
    let mut out = Vec::new();
    for dir in dirs.iter().flatten() {
        if let Some(m) = manifest_of(dir)? {
            out.push((m, dir.to_path_buf()));
        }
    }
    Ok(out)
}
