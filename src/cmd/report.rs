//! `clintune report`: the governance page of an export.

use clap::Args;
use clintune_deid::policy::LoadedPolicy;
use clintune_lineage::Manifest;
use clintune_validate::report::{Sources, render, write};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Arguments of `clintune report`.
#[derive(Debug, Args)]
#[command(after_help = "\
One self-contained HTML page (inline CSS and SVG; nothing is fetched): the release status and its \
checks, the lineage chain drawn (deid → curate → train → export → release), de-identification \
counts, the dataset's figures, training and validation loss by step, the evaluation table, the \
memorization audit and a PHI scan of the export.

The approval is looked for beside the export (vN-release); the evaluation and audit it relied on \
are found through its manifest unless --eval and --audit name others.

Example:
  clintune report checkpoints/quickstart/v1 --out report.html")]
pub struct ReportArgs {
    /// The export (`checkpoints/NAME/vN`).
    #[arg(value_name = "EXPORT")]
    export: PathBuf,
    /// The page to write.
    #[arg(long, short = 'o', value_name = "FILE")]
    out: PathBuf,
    /// A `clintune eval` output to show.
    #[arg(long, value_name = "DIR")]
    eval: Option<PathBuf>,
    /// A `clintune audit memorization` output to show.
    #[arg(long, value_name = "DIR")]
    audit: Option<PathBuf>,
    /// The `clintune release` approval. Default: `vN-release` beside the export, if there.
    #[arg(long, value_name = "DIR")]
    release: Option<PathBuf>,
}

/// Runs `clintune report`.
pub fn run(a: ReportArgs) -> anyhow::Result<()> {
    let release = a.release.clone().or_else(|| {
        let name = a.export.file_name()?.to_string_lossy().into_owned();
        let beside = a.export.with_file_name(format!("{name}-release"));
        beside.join("manifest.json").is_file().then_some(beside)
    });
    let relied = release.as_deref().map(relied_on).unwrap_or_default();
    let scrubber = LoadedPolicy::from_arg(None)?.scrubber()?;
    let scan = clintune_deid::scan::scan(&a.export, &scrubber)?;
    let mut by_category: BTreeMap<String, usize> = BTreeMap::new();
    for f in &scan.findings {
        *by_category.entry(f.category.to_string()).or_default() += 1;
    }
    let sources = Sources {
        export: a.export.clone(),
        eval: a.eval.clone().or_else(|| relied.get("eval").cloned()),
        audit: a.audit.clone().or_else(|| relied.get("audit").cloned()),
        release,
        scan: Some(by_category.into_iter().collect()),
    };
    let page = render(&sources)?;
    write(&a.out, &page)?;
    summary!("wrote {} ({} bytes)", a.out.display(), page.len());
    Ok(())
}

/// The directories of an approval's parents, by stage.
fn relied_on(release: &Path) -> BTreeMap<String, PathBuf> {
    let Ok(manifest) = Manifest::read(release) else {
        return BTreeMap::new();
    };
    manifest
        .parents
        .iter()
        .map(|p| (p.stage.clone(), p.dir_from(release)))
        .collect()
}
