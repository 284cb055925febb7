//! `clintune deid`: de-identify records, and score the detector.

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use clintune_core::secret::SecretKey;
use clintune_deid::DeidOptions;
use clintune_deid::eval::{self, Format};
use clintune_deid::learn::{self, TrainConfig, sgd::SgdConfig};
use clintune_deid::policy::{LoadedPolicy, TextMode};
use std::io::Write;
use std::path::PathBuf;

/// Environment variable holding the de-identification key.
pub const KEY_ENV: &str = "CLINTUNE_DEID_KEY";

/// Arguments of `clintune deid`.
#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    // --input and --out are checked in `run_deid`, not by clap (which would
    // also demand them of `deid eval`): the usage line says they are needed.
    override_usage = "clintune deid --input <PATH>... --out <DIR> [OPTIONS]\n       clintune deid <COMMAND>",
    after_help = "Examples:\n  clintune keygen --out deid.key\n  clintune deid --input exports/bulk --input traces.jsonl --key-file deid.key --out datasets/deid\n  clintune deid eval --format physionet ../shared/corpora/physionet-deid-dev --fold 2/2 --mode strict\n  clintune deid eval --format brat tests/fixtures/deid-transcripts"
)]
pub struct DeidArgs {
    #[command(subcommand)]
    command: Option<DeidCommand>,
    #[command(flatten)]
    run: RunArgs,
}

/// Arguments of a de-identification run.
#[derive(Debug, Args)]
struct RunArgs {
    /// Input files or directories (searched recursively). Formats are detected by
    /// content: FHIR R4 Bulk Data NDJSON, FHIR R4 Bundle JSON, chat-format JSONL.
    #[arg(long = "input", short = 'i', value_name = "PATH", num_args = 1..)]
    inputs: Vec<PathBuf>,
    /// Policy: the allowlist of kept fields and how each is treated. Default: the
    /// built-in Safe Harbor policy (deid/safe-harbor.toml and its dictionaries,
    /// compiled in); give a file to use an edited copy.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Output directory; written to a temporary directory and renamed when complete.
    #[arg(long, short = 'o', value_name = "DIR")]
    out: Option<PathBuf>,
    /// File holding the secret key (at least 32 bytes). Otherwise $CLINTUNE_DEID_KEY is used.
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// Replace the output directory if it exists.
    #[arg(long)]
    force: bool,
    /// Drop and count invalid records instead of stopping at the first one.
    #[arg(long)]
    skip_invalid: bool,
    /// Date (YYYY-MM-DD) as of which living patients' ages are computed for the
    /// 90+ rule; default: today.
    #[arg(long, value_name = "DATE")]
    as_of: Option<chrono::NaiveDate>,
    /// Input megabytes per patient partition. Records are grouped by patient
    /// through partition files; memory grows with this size, not with the input.
    #[arg(long, value_name = "MB", default_value_t = clintune_deid::pipeline::DEFAULT_PARTITION_MB)]
    partition_mb: u64,
}

#[derive(Debug, Subcommand)]
enum DeidCommand {
    /// Score the free-text PHI detector against an annotated corpus.
    Eval(EvalArgs),
    /// Train the PHI model (`phi-model.txt`) on an annotated corpus: the rules
    /// propose, the model learns which proposals and which other words are PHI.
    #[command(
        after_help = "Thresholds are chosen by cross-validation over patients for each mode's \
            recall target; the file records how it was made and its out-of-fold scores. The same \
            corpus, dictionaries and options give the same file, byte for byte.\n\n\
            Example (the shipped model):\n  \
            clintune deid train-model --format physionet ../shared/corpora/physionet-deid-dev \
            --name physionet-deid-dev --out deid/dictionaries/phi-model.txt"
    )]
    TrainModel(TrainModelArgs),
    /// Print the licence notices of the word lists compiled into clintune
    /// (SCOWL, Philter), which go with every copy of the binary.
    Notices,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CorpusFormat {
    /// PhysioNet deid package: id.text with id.deid or id-phi.phrase.
    Physionet,
    /// brat standoff: NAME.txt with NAME.ann.
    Brat,
}

#[derive(Debug, Args)]
struct EvalArgs {
    /// Corpus layout.
    #[arg(long, value_enum, default_value = "physionet")]
    format: CorpusFormat,
    /// Corpus directory.
    dir: PathBuf,
    /// Policy whose dictionaries and mode the detector uses. Default: the
    /// built-in Safe Harbor policy.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Also write the predicted spans in the PhysioNet id.phi layout.
    #[arg(long, value_name = "FILE")]
    predictions: Option<PathBuf>,
    /// Also print every missed span and false positive with its context
    /// (quotes the corpus: for development corpora only).
    #[arg(long)]
    show_errors: bool,
    /// Detector mode, instead of the policy's `[text] mode`.
    #[arg(long, value_enum)]
    mode: Option<ModeArg>,
    /// Score one fold of the corpus split by patient, as K/N (e.g. `1/2`):
    /// grow rules on one fold, report on the other.
    #[arg(long, value_name = "K/N", value_parser = parse_fold)]
    fold: Option<(usize, usize)>,
    /// Score the rules alone, without the learned model's decision.
    #[arg(long)]
    rules_only: bool,
}

#[derive(Debug, Args)]
struct TrainModelArgs {
    /// Corpus layout.
    #[arg(long, value_enum, default_value = "physionet")]
    format: CorpusFormat,
    /// Annotated corpus directory.
    dir: PathBuf,
    /// Where to write the model (written whole or not at all).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Policy whose dictionaries and rules propose the candidates. Default:
    /// the built-in Safe Harbor policy.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// The corpus's name in the model file. Default: the directory's name.
    #[arg(long)]
    name: Option<String>,
    /// Surrogate copies of each note: every gold span re-filled with invented
    /// names, places, dates and numbers in every case.
    #[arg(long, default_value_t = TrainConfig::default().augment)]
    augment: usize,
    /// Probability that a token of a surrogate copy is shown without the
    /// rules' findings, so that the model learns contexts as well.
    #[arg(long, default_value_t = TrainConfig::default().rule_dropout)]
    rule_dropout: f64,
    /// Cross-validation folds over patients, for the thresholds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(2..=20))]
    folds: u16,
    /// Out-of-fold recall the balanced threshold must reach.
    #[arg(long, default_value_t = TrainConfig::default().balanced_recall)]
    balanced_recall: f64,
    /// Out-of-fold recall the strict threshold must reach.
    #[arg(long, default_value_t = TrainConfig::default().strict_recall)]
    strict_recall: f64,
    /// Passes of stochastic gradient descent.
    #[arg(long, default_value_t = SgdConfig::default().epochs)]
    epochs: usize,
    /// Seed of the surrogates and the example order.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Weight of a PHI token's loss against another token's.
    #[arg(long, default_value_t = SgdConfig::default().positive_weight)]
    phi_weight: f32,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ModeArg {
    /// Every word not known to be safe is replaced.
    Strict,
    /// Unknown words are replaced when name-like by form or position.
    Balanced,
}

fn parse_fold(s: &str) -> Result<(usize, usize), String> {
    let parsed = s
        .split_once('/')
        .and_then(|(k, n)| Some((k.trim().parse().ok()?, n.trim().parse().ok()?)));
    match parsed {
        Some((k, n)) if n >= 2 && (1..=n).contains(&k) => Ok((k, n)),
        _ => Err(format!(
            "{s:?} is not a fold: write K/N with 1 <= K <= N and N >= 2, e.g. 1/2"
        )),
    }
}

/// Runs `clintune deid`.
pub fn run(args: DeidArgs) -> anyhow::Result<()> {
    match args.command {
        Some(DeidCommand::Eval(e)) => run_eval(e),
        Some(DeidCommand::TrainModel(t)) => run_train_model(t),
        Some(DeidCommand::Notices) => {
            for (name, text) in clintune_deid::builtin::NOTICES {
                println!("==== {name}\n\n{text}");
            }
            Ok(())
        }
        None => run_deid(args.run),
    }
}

fn run_deid(a: RunArgs) -> anyhow::Result<()> {
    // Checked here rather than by clap, which would also demand them of `deid eval`.
    let Some(out) = a.out else {
        bail!(
            "`clintune deid` needs --out DIR (where the de-identified records go); see `clintune deid --help`"
        );
    };
    if a.inputs.is_empty() {
        bail!(
            "`clintune deid` needs at least one --input PATH (a file or directory of records); see `clintune deid --help`"
        );
    }
    let key = SecretKey::load(a.key_file.as_deref(), KEY_ENV)?;
    let as_of = a.as_of.unwrap_or_else(|| chrono::Utc::now().date_naive());
    let opts = DeidOptions {
        inputs: a.inputs,
        policy: a.policy,
        out,
        force: a.force,
        skip_invalid: a.skip_invalid,
        as_of,
        partition_bytes: a.partition_mb << 20,
    };
    let s = clintune_deid::run_with_progress(&opts, &key, &crate::progress::Bars::default())
        .context("de-identification failed; no output was written")?;
    let counts = &s.manifest.counts;
    let mb = s.input_bytes as f64 / 1e6;
    summary!(
        "de-identified {} patients ({} with a FHIR Patient record): {} records in, {} out, {} dropped, {} fields dropped",
        s.audit.patients,
        s.audit.patients_with_record,
        count(counts, "records_in"),
        count(counts, "records_out"),
        count(counts, "records_dropped"),
        count(counts, "fields_dropped")
    );
    summary!(
        "PHI replaced: {}",
        counts
            .get("phi_replaced")
            .map(|v| v.to_string())
            .unwrap_or_default()
    );
    if s.audit.invalid.values().sum::<u64>() > 0 {
        summary!(
            "invalid records skipped: {} (see audit.json)",
            s.audit.invalid.values().sum::<u64>()
        );
    }
    summary!(
        "{mb:.1} MB in {:.1} s ({:.1} MB/s)",
        s.seconds,
        mb / s.seconds.max(1e-9)
    );
    let config = |k: &str| s.manifest.config.get(k).and_then(|v| v.as_str());
    summary!(
        "policy: {} (free text: {} mode, {})",
        s.policy,
        config("text_mode").unwrap_or("balanced"),
        match config("text_decider") {
            Some(clintune_deid::scrub::RULES_ALONE) => {
                "rules alone: the policy's dictionaries have no phi-model.txt"
            }
            other => other.unwrap_or("learned model"),
        }
    );
    summary!("output: {} (manifest {})", s.out.display(), s.manifest.id);
    Ok(())
}

fn count(counts: &serde_json::Map<String, serde_json::Value>, k: &str) -> u64 {
    counts
        .get(k)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
}

fn corpus_format(f: CorpusFormat) -> Format {
    match f {
        CorpusFormat::Physionet => Format::Physionet,
        CorpusFormat::Brat => Format::Brat,
    }
}

fn run_train_model(t: TrainModelArgs) -> anyhow::Result<()> {
    let policy = LoadedPolicy::from_arg(t.policy.as_deref())?;
    // The rules propose; the model file being replaced is not read.
    let scrubber = policy.rules_scrubber()?;
    let notes = eval::load(&t.dir, corpus_format(t.format))
        .with_context(|| format!("reading corpus {}", t.dir.display()))?;
    if notes.iter().all(|n| n.gold.is_empty()) {
        bail!("{}: no annotated PHI spans to learn from", t.dir.display());
    }
    let name = t.name.clone().unwrap_or_else(|| {
        t.dir
            .file_name()
            .map_or_else(|| "corpus".into(), |n| n.to_string_lossy().into_owned())
    });
    let cfg = TrainConfig {
        augment: t.augment,
        rule_dropout: t.rule_dropout,
        folds: usize::from(t.folds),
        balanced_recall: t.balanced_recall,
        strict_recall: t.strict_recall,
        sgd: SgdConfig {
            epochs: t.epochs,
            seed: t.seed,
            positive_weight: t.phi_weight,
            ..SgdConfig::default()
        },
        corpus_name: name,
    };
    let started = std::time::Instant::now();
    let say = |stage: &str| eprintln!("[{:>6.1}s] {stage}", started.elapsed().as_secs_f64());
    let (model, report) = learn::train(&scrubber, &notes, &cfg, &say);
    clintune_core::staging::write_atomic(&t.out, model.render().as_bytes())
        .with_context(|| format!("writing {}", t.out.display()))?;
    print!("{}", report.render());
    println!("model written to {}", t.out.display());
    Ok(())
}

fn run_eval(e: EvalArgs) -> anyhow::Result<()> {
    let policy = LoadedPolicy::from_arg(e.policy.as_deref())?;
    let mut scrubber = if e.rules_only {
        policy.rules_scrubber()?
    } else {
        policy.scrubber()?
    };
    if let Some(mode) = e.mode {
        scrubber = scrubber.with_mode(match mode {
            ModeArg::Strict => TextMode::Strict,
            ModeArg::Balanced => TextMode::Balanced,
        });
    }
    let mut notes = eval::load(&e.dir, corpus_format(e.format))
        .with_context(|| format!("reading corpus {}", e.dir.display()))?;
    if let Some((k, n)) = e.fold {
        notes = eval::fold(notes, k, n);
        println!("fold {k}/{n} (patients split by a hash of their id)");
    }
    println!("mode {}, {}", scrubber.mode().as_str(), scrubber.decider());
    let preds: Vec<_> = notes.iter().map(|n| eval::predict(&scrubber, n)).collect();
    let report = eval::score(&notes, &preds);
    let mut out = std::io::stdout().lock();
    if e.show_errors {
        for line in eval::errors(&notes, &preds) {
            writeln!(out, "{line}")?;
        }
    }
    write!(out, "{}", report.render())?;
    if let Some(p) = e.predictions {
        eval::write_predictions(&p, &notes, &preds)?;
        println!("predictions written to {}", p.display());
    }
    Ok(())
}
