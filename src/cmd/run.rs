//! `clintune run`: the whole pipeline from one recipe — de-identify, curate,
//! (initialise a base model,) train, export, verify the export (hashes down
//! to the records, tensors against its config).
//!
//! Each stage runs as its own `clintune` command, exactly as a user would
//! run it by hand, so the outputs, manifests and logs are the stages' own.

use anyhow::{Context, bail};
use clap::Args;
use clintune_train::Recipe;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Arguments of `clintune run`.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  \
    CLINTUNE_DEID_KEY=… clintune run recipes/quickstart.toml\n\n\
    The recipe's [deid] table names the input records and the de-identified output, [curate]\n\
    the curation settings (its output is data.dataset), [model.init] how to create model.base\n\
    when it does not exist, [export] the export name; the rest is a training recipe\n\
    (recipes/README.md). A run interrupted during training continues where it stopped.")]
pub struct RunArgs {
    /// The pipeline recipe (TOML).
    #[arg(value_name = "RECIPE")]
    recipe: PathBuf,
    /// File holding the de-identification key. Otherwise $CLINTUNE_DEID_KEY is used.
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
}

/// `[deid]` of a pipeline recipe.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeidStage {
    /// Record files or directories.
    input: Vec<PathBuf>,
    /// The de-identified output directory.
    out: PathBuf,
    /// The policy file; default: the built-in Safe Harbor policy.
    policy: Option<PathBuf>,
}

/// `[export]` of a pipeline recipe.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportStage {
    name: String,
    #[serde(default = "default_root")]
    root: PathBuf,
    #[serde(default = "default_dtype")]
    dtype: String,
}

fn default_root() -> PathBuf {
    PathBuf::from("checkpoints")
}

fn default_dtype() -> String {
    "bf16".into()
}

/// Runs `clintune run`.
pub fn run(a: RunArgs) -> anyhow::Result<()> {
    let recipe = Recipe::load(&a.recipe)?;
    let deid: DeidStage = table(&recipe.deid, "deid", &a.recipe)?;
    let export: ExportStage = table(&recipe.export, "export", &a.recipe)?;
    let started = Instant::now();
    let recipe_arg = a.recipe.display().to_string();
    let mut args = vec![
        "deid".to_string(),
        "--out".into(),
        path(&deid.out),
        "--force".into(),
    ];
    for input in &deid.input {
        args.extend(["--input".into(), path(input)]);
    }
    if let Some(policy) = &deid.policy {
        args.extend(["--policy".into(), path(policy)]);
    }
    if let Some(key) = &a.key_file {
        args.extend(["--key-file".into(), path(key)]);
    }
    stage("1/6 de-identify", &args)?;
    let base = &recipe.model.base;
    let dataset = &recipe.data.dataset;
    let mut curate = vec![
        "curate".into(),
        "--input".into(),
        path(&deid.out),
        "--config".into(),
        recipe_arg.clone(),
        "--out".into(),
        path(dataset),
        "--force".into(),
    ];
    if base.join("config.json").is_file() {
        curate.extend(["--tokenizer".into(), path(base)]);
    }
    stage("2/6 curate", &curate)?;
    if !base.join("config.json").is_file() {
        let mut init = vec![
            "init-model".into(),
            "--tokenizer".into(),
            path(dataset),
            "--out".into(),
            path(base),
        ];
        for (key, value) in recipe.model.init.iter().flatten() {
            init.extend([format!("--{}", key.replace('_', "-")), toml_arg(value)]);
        }
        stage("3/6 initialise the base model", &init)?;
    }
    stage(
        "4/6 train",
        &["train".into(), recipe_arg, "--resume".into()],
    )?;
    let run_dir = &recipe.train.output;
    let exported = vec![
        "export".into(),
        path(run_dir),
        "--name".into(),
        export.name.clone(),
        "--root".into(),
        path(&export.root),
        "--dtype".into(),
        export.dtype.clone(),
    ];
    stage("5/6 export", &exported)?;
    let version = latest_version(&export.root.join(&export.name))?;
    stage(
        "6/6 verify",
        &["export".into(), "verify".into(), path(&version)],
    )?;
    tracing::info!(
        "done in {:.0} s: de-identified {} → curated {} → trained {} → exported {}",
        started.elapsed().as_secs_f64(),
        deid.out.display(),
        dataset.display(),
        run_dir.display(),
        version.display()
    );
    Ok(())
}

fn table<T: for<'de> Deserialize<'de>>(
    t: &Option<toml::Table>,
    name: &str,
    recipe: &Path,
) -> anyhow::Result<T> {
    let Some(t) = t else {
        bail!(
            "{}: `clintune run` needs a [{name}] table",
            recipe.display()
        );
    };
    t.clone()
        .try_into()
        .with_context(|| format!("{}: [{name}]", recipe.display()))
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

fn toml_arg(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Runs one stage as a `clintune` command; its output goes to this terminal.
fn stage(title: &str, args: &[String]) -> anyhow::Result<()> {
    tracing::info!("{title}: clintune {}", shown(args));
    let exe = std::env::current_exe().context("finding the clintune executable")?;
    let status = Command::new(exe)
        .args(args)
        .status()
        .with_context(|| format!("starting `clintune {}`", args[0]))?;
    if !status.success() {
        bail!(
            "{title} failed (clintune {}); see its message above",
            shown(args)
        );
    }
    Ok(())
}

/// The arguments for a log line, record inputs left out: their names can
/// identify a patient (the de-identification manifest keeps them only
/// under keyed pseudonyms).
fn shown(args: &[String]) -> String {
    let mut out = Vec::with_capacity(args.len());
    let mut hide = false;
    for a in args {
        out.push(if hide { "<input>" } else { a.as_str() });
        hide = a == "--input";
    }
    out.join(" ")
}

/// The newest version directory in a registry.
fn latest_version(name_dir: &Path) -> anyhow::Result<PathBuf> {
    let path = name_dir.join(clintune_export::registry::INDEX_FILE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let index: clintune_export::registry::Index = serde_json::from_str(&text)?;
    let last = index
        .versions
        .last()
        .context("the registry lists no version")?;
    Ok(name_dir.join(&last.path))
}
