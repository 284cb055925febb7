//! `clintune`: frontier tuning of clinical foundation models.
//!
//! A thin command-line layer over the stage libraries under `crates/`.

mod cmd;
mod progress;

/// Tokenizing and writing Parquet allocate many small buffers; mimalloc made
/// curation about a fifth faster than the system allocator
/// (`cargo bench --bench curate`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Adapt a clinical foundation model to your institution's records, safely.
///
/// Records flow one way: de-identify (`deid`) → curate → train → export,
/// and every stage writes a lineage manifest (`lineage show|verify`).
#[derive(Debug, Parser)]
#[command(name = "clintune", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only warnings and errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole pipeline from one recipe: de-identify, curate, train, export, verify, validate.
    Run(cmd::run::RunArgs),
    /// De-identify FHIR R4 records and chat traces (HIPAA Safe Harbor) into Parquet.
    Deid(cmd::deid::DeidArgs),
    /// Turn de-identified records into a tokenized, deduplicated, patient-split training set.
    Curate(cmd::curate::CurateArgs),
    /// Train a tokenizer on de-identified records.
    #[command(subcommand)]
    Tokenizer(cmd::tokenizer::TokenizerCommand),
    /// Write a new, randomly initialised Llama-family model for a tokenizer (Hugging Face format).
    InitModel(cmd::init_model::InitModelArgs),
    /// Fine-tune a model (full or LoRA) as a recipe says; resumes exactly with --resume.
    Train(cmd::train::TrainArgs),
    /// Introduce the nodes of multi-node training runs to each other (burn-collective's orchestrator).
    Orchestrator(cmd::orchestrator::OrchestratorArgs),
    /// Export a finished run as a new version of a Hugging Face model directory, with a model card.
    Export(cmd::export::ExportArgs),
    /// Measure training throughput (tokens/s, model FLOPs, MFU) on a random model.
    Bench(cmd::bench::BenchArgs),
    /// Check a training recipe without running it.
    #[command(subcommand)]
    Recipe(cmd::recipe::RecipeCommand),
    /// Score inputs under a model: per-token log-probabilities and mean loss, as JSON lines.
    Score(cmd::score::ScoreArgs),
    /// Evaluate a model on held-out patients of a curated dataset, by task, against a baseline.
    Eval(cmd::eval::EvalArgs),
    /// Audit a model before release: memorization of planted canaries and of training examples.
    #[command(subcommand)]
    Audit(cmd::audit::AuditCommand),
    /// Release an export: lineage, PHI scan, eval and memorization checks, then a signed approval.
    Release(cmd::release::ReleaseArgs),
    /// Write the governance page of an export: lineage, counts, curves, eval, audit, scan, release.
    Report(cmd::report::ReportArgs),
    /// Continue a prompt with a model (and LoRA adapter): greedy or sampled, streamed.
    Generate(cmd::generate::GenerateArgs),
    /// Look for PHI in a dataset or export: text fields, configs, tokenizer vocabulary, model card.
    Scan(cmd::scan::ScanArgs),
    /// Show or verify the lineage of any stage's output directory.
    #[command(subcommand)]
    Lineage(cmd::lineage::LineageCommand),
    /// Create a new random de-identification key file (mode 0600).
    Keygen(cmd::keygen::KeygenArgs),
}

/// Ctrl-C, SIGTERM or SIGHUP: unfinished output folders may hold raw
/// records (de-identification groups them by patient on disk), and
/// destructors do not run when a signal ends the process, so remove them
/// here, then exit as an interrupted process does (128 + SIGINT).
fn remove_work_folders_on_interrupt() {
    let installed = ctrlc::set_handler(|| {
        let n = clintune_core::staging::remove_uncommitted();
        if n > 0 {
            eprintln!("interrupted: removed {n} unfinished output folder(s); nothing was written");
        }
        std::process::exit(130);
    });
    if let Err(e) = installed {
        tracing::warn!(
            "cannot install the interrupt handler ({e}); an interrupted run may leave a work folder behind"
        );
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    cmd::set_quiet(cli.quiet);
    remove_work_folders_on_interrupt();
    let result = match cli.command {
        Command::Run(args) => cmd::run::run(args),
        Command::Deid(args) => cmd::deid::run(args),
        Command::Lineage(c) => cmd::lineage::run(c),
        Command::Scan(args) => cmd::scan::run(args),
        Command::Curate(args) => cmd::curate::run(args),
        Command::Tokenizer(c) => cmd::tokenizer::run(c),
        Command::Train(args) => {
            clintune_train::memory::keep_freed_memory();
            cmd::train::run(args)
        }
        Command::InitModel(args) => cmd::init_model::run(args),
        Command::Orchestrator(args) => cmd::orchestrator::run(args),
        Command::Bench(args) => {
            clintune_train::memory::keep_freed_memory();
            cmd::bench::run(args)
        }
        Command::Recipe(c) => cmd::recipe::run(c),
        Command::Export(args) => cmd::export::run(args),
        Command::Score(args) => cmd::score::run(args),
        Command::Eval(args) => cmd::eval::run(args),
        Command::Audit(command) => cmd::audit::run(command),
        Command::Release(args) => cmd::release::run(args),
        Command::Report(args) => cmd::report::run(args),
        Command::Generate(args) => cmd::generate::run(args),
        Command::Keygen(args) => cmd::keygen::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Output piped into `head` and closed early: not an error.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", chain_message(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each once ([`clintune_core::with_causes`]).
fn chain_message(e: &anyhow::Error) -> String {
    clintune_core::with_causes(e.as_ref())
}

fn init_logging(verbose: u8, quiet: bool) {
    // burn's collective logs every tensor transfer at info level: one line
    // per parameter and step. Its warnings still show; -vv shows all.
    let level = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info,burn_collective=warn,burn_communication=warn",
        (false, 1) => "debug,burn_collective=warn,burn_communication=warn",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CLINTUNE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

#[cfg(test)]
mod tests {
    use super::chain_message;

    /// An error that shows its cause and also returns it as `source()`.
    #[derive(Debug)]
    struct Shows {
        source: std::io::Error,
    }

    impl std::fmt::Display for Shows {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "reading part-0.parquet: {}", self.source)
        }
    }

    impl std::error::Error for Shows {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    #[test]
    fn causes_follow_the_message_once() {
        let io = || std::io::Error::other("unexpected end of file");
        let shown = anyhow::Error::new(Shows { source: io() }).context("curation failed");
        assert_eq!(
            chain_message(&shown),
            "curation failed: reading part-0.parquet: unexpected end of file"
        );
        let plain = anyhow::Error::new(io()).context("export failed");
        assert_eq!(
            chain_message(&plain),
            "export failed: unexpected end of file"
        );
    }
}
