//! `clintune run`: the whole pipeline from one recipe — de-identify, curate,
//! (initialise a base model,) train, export, verify the export (hashes down
//! to the records, tensors against its config).
//!
//! Each stage runs as its own `clintune` command, exactly as a user would
//! run it by hand, so the outputs, manifests and logs are the stages' own.

use anyhow::{Context, bail};
use clap::Args;
use clintune_train::Recipe;
use clintune_train::error::TrainError;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Arguments of `clintune run`.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  \
    CLINTUNE_DEID_KEY=… clintune run recipes/quickstart.toml\n  \
    CLINTUNE_DEID_KEY=… clintune run recipes/byom.toml      # a downloaded Hugging Face model\n\n\
    The recipe's [deid] table names the input records and the de-identified output, [curate]\n\
    the curation settings (optional: the defaults; its output is data.dataset), [model.init]\n\
    how to create model.base when it does not exist (a model.base that exists, such as a\n\
    downloaded model, brings its own tokenizer and chat template), [export] the export name;\n\
    the rest is a training recipe (recipes/README.md). A run interrupted during training continues where it stopped.\n\n\
    Running it again re-does de-identification and curation; training continues only when\n\
    the recipe and the curated data are unchanged. Otherwise the earlier run directory is\n\
    moved to <train.output>.previous and training starts over. With [model.init] the base\n\
    model is the pipeline's own: it is made again (the old one kept as <model.base>.previous)\n\
    when the data's tokenizer changes.\n\n\
    With a [validate] table (`split` = \"test\", `candidates` = 10000) the export is then\n\
    evaluated against model.base (vN-eval/), audited for memorization when [curate.audit]\n\
    planted canaries (vN-audit/), and described in vN-report.html, all beside the export.")]
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

/// `[validate]` of a pipeline recipe: the export is evaluated against its
/// base, audited for memorization when the data has canaries, and a report
/// is written beside it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidateStage {
    #[serde(default = "default_split")]
    split: String,
    #[serde(default = "default_candidates")]
    candidates: usize,
}

fn default_split() -> String {
    "test".into()
}

fn default_candidates() -> usize {
    10_000
}

/// Runs `clintune run`.
pub fn run(a: RunArgs) -> anyhow::Result<()> {
    let recipe = Recipe::load(&a.recipe)?;
    let deid: DeidStage = table(&recipe.deid, "deid", &a.recipe)?;
    let export: ExportStage = table(&recipe.export, "export", &a.recipe)?;
    let validate: Option<ValidateStage> = match &recipe.validate {
        Some(_) => Some(table(&recipe.validate, "validate", &a.recipe)?),
        None => None,
    };
    let stages = if validate.is_some() { 9 } else { 6 };
    let step = |n: usize, what: &str| format!("{n}/{stages} {what}");
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
    stage(&step(1, "de-identify"), &args)?;
    let base = &recipe.model.base;
    let dataset = &recipe.data.dataset;
    // A base that [model.init] describes, or that the first run creates, is
    // made from the data's tokenizer; any other base brings its own.
    let own_base = recipe.model.init.is_some() || !base.join("config.json").is_file();
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
    if !own_base {
        curate.extend(["--tokenizer".into(), path(base)]);
    }
    stage(&step(2, "curate"), &curate)?;
    if own_base
        && base.join("config.json").is_file()
        && clintune_train::trainer::check_tokenizer(&recipe).is_err()
    {
        let why = format!(
            "{}: the curated data's tokenizer is not the one this base model was made with",
            base.display()
        );
        set_aside(base, &why)?;
    }
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
        stage(&step(3, "initialise the base model"), &init)?;
    }
    let run_dir = &recipe.train.output;
    match same_run(&recipe) {
        Ok(()) => {}
        // Made under another recipe or from other data: start over.
        Err(e @ (TrainError::RecipeChanged { .. } | TrainError::DatasetChanged { .. })) => {
            set_aside(run_dir, &e)?
        }
        Err(e) => return Err(e).context("checking the run to continue"),
    }
    stage(
        &step(4, "train"),
        &["train".into(), recipe_arg, "--resume".into()],
    )?;
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
    stage(&step(5, "export"), &exported)?;
    let version = latest_version(&export.root.join(&export.name))?;
    stage(
        &step(6, "verify"),
        &["export".into(), "verify".into(), path(&version)],
    )?;
    if let Some(v) = &validate {
        validate_export(v, &version, &recipe, &step)?;
    }
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

/// Evaluates `version` against the recipe's base, audits it when the data
/// has canaries, and writes `vN-report.html` beside it; outputs go to
/// `vN-eval` and `vN-audit`.
fn validate_export(
    v: &ValidateStage,
    version: &Path,
    recipe: &Recipe,
    step: &dyn Fn(usize, &str) -> String,
) -> anyhow::Result<()> {
    let beside = |suffix: &str| {
        let name = version
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        version.with_file_name(format!("{}-{suffix}", name.unwrap_or_default()))
    };
    let (eval, audit, report) = (beside("eval"), beside("audit"), beside("report.html"));
    let dataset = &recipe.data.dataset;
    let evaluate = vec![
        "eval".into(),
        "--model".into(),
        path(version),
        "--dataset".into(),
        path(dataset),
        "--baseline".into(),
        path(&recipe.model.base),
        "--split".into(),
        v.split.clone(),
        "--out".into(),
        path(&eval),
        "--force".into(),
    ];
    stage(&step(7, "evaluate against the base"), &evaluate)?;
    let canaries = dataset
        .join(clintune_curate::canary::CANARIES_FILE)
        .is_file();
    let mut shown = vec!["report".into(), path(version), "--eval".into(), path(&eval)];
    if canaries {
        let audited = vec![
            "audit".into(),
            "memorization".into(),
            "--model".into(),
            path(version),
            "--dataset".into(),
            path(dataset),
            "--candidates".into(),
            v.candidates.to_string(),
            "--out".into(),
            path(&audit),
            "--force".into(),
        ];
        stage(&step(8, "audit memorization"), &audited)?;
        shown.extend(["--audit".into(), path(&audit)]);
    } else {
        tracing::info!(
            "{}: skipped, the data has no canaries ([curate.audit] canaries)",
            step(8, "audit memorization")
        );
    }
    shown.extend(["--out".into(), path(&report)]);
    stage(&step(9, "report"), &shown)
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

/// Whether the run directory's latest checkpoint, if any, was made under this
/// recipe and on the dataset curated now.
fn same_run(recipe: &Recipe) -> Result<(), TrainError> {
    let run_dir = &recipe.train.output;
    let Some(latest) = clintune_train::checkpoint::latest(run_dir) else {
        return Ok(());
    };
    let mut state = clintune_train::checkpoint::load_state(&latest)?;
    if state.dataset_id.is_empty() {
        // Checkpoints from before the dataset was recorded: the run's
        // manifest names the dataset it finished on.
        state.dataset_id = clintune_lineage::Manifest::read(run_dir)
            .ok()
            .and_then(|m| m.parents.into_iter().find(|p| p.stage == "curate"))
            .map(|p| p.id)
            .unwrap_or_default();
    }
    let dataset = &recipe.data.dataset;
    let dataset_id = clintune_lineage::Manifest::read(dataset)
        .map_err(|e| TrainError::dataset(dataset, e))?
        .id;
    clintune_train::trainer::check_same_run(&state, recipe, &dataset_id, run_dir)
}

/// Moves `dir`, made from other data or another recipe (`why`), to
/// `<dir>.previous`, replacing an older one there, so the pipeline can make
/// it again without losing the last one.
fn set_aside(dir: &Path, why: &dyn std::fmt::Display) -> anyhow::Result<()> {
    let mut aside = dir.as_os_str().to_owned();
    aside.push(".previous");
    let aside = PathBuf::from(aside);
    if aside.exists() {
        std::fs::remove_dir_all(&aside).with_context(|| format!("removing {}", aside.display()))?;
    }
    std::fs::rename(dir, &aside)
        .with_context(|| format!("moving {} to {}", dir.display(), aside.display()))?;
    tracing::warn!(
        "{why}\n  moved {} to {} and making it again",
        dir.display(),
        aside.display()
    );
    Ok(())
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
