//! `clintune curate`: de-identified records become a tokenized training set.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use clintune_curate::config::CurateConfig;
use clintune_curate::pipeline::{CurateOptions, CurateSummary};
use clintune_curate::schema::SPLITS;
use clintune_curate::split::Shard;
use clintune_curate::stats::Tallies;
use std::path::PathBuf;

/// Arguments of `clintune curate`.
#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Examples:\n  clintune curate --input datasets/deid --config recipes/curate.toml --out datasets/curated\n  clintune tokenizer train --input datasets/deid --out datasets/tokenizer\n  clintune curate --input datasets/deid --tokenizer datasets/tokenizer --shard 0/3 --out datasets/shard-0\n  clintune curate merge --out datasets/curated datasets/shard-0 datasets/shard-1 datasets/shard-2"
)]
pub struct CurateArgs {
    #[command(subcommand)]
    command: Option<CurateCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// A `clintune deid` output directory. Its manifest is verified first; anything
    /// else is refused.
    #[arg(long, short = 'i', value_name = "DIR")]
    input: Option<PathBuf>,
    /// Curation config (tasks, filters, dedup, split, tokenizer training), or a
    /// recipe with a [curate] table. Default: the built-in defaults, as written
    /// in recipes/curate.toml.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Tokenizer: a tokenizer.json, or a directory holding one (and
    /// tokenizer_config.json with its chat template). Default: train a byte-level
    /// BPE on the train split.
    #[arg(long, short = 't', value_name = "PATH")]
    tokenizer: Option<PathBuf>,
    /// Output directory; written to a temporary directory and renamed when complete.
    #[arg(long, short = 'o', value_name = "DIR")]
    out: Option<PathBuf>,
    /// Replace the output directory if it exists.
    #[arg(long)]
    force: bool,
    /// Process only the patients of shard I of N (0-based) and write candidates
    /// for `clintune curate merge`; needs --tokenizer. One Slurm array task per shard.
    #[arg(long, value_name = "I/N")]
    shard: Option<Shard>,
}

#[derive(Debug, Subcommand)]
enum CurateCommand {
    /// Merge the outputs of `curate --shard I/N` (all N of them) into one dataset,
    /// deduplicated across shards: the same dataset a single run makes.
    Merge(MergeArgs),
}

#[derive(Debug, Args)]
struct MergeArgs {
    /// Shard output directories.
    #[arg(required = true, value_name = "SHARD_DIR")]
    shards: Vec<PathBuf>,
    /// Output directory.
    #[arg(long, short = 'o', value_name = "DIR")]
    out: PathBuf,
    /// Replace the output directory if it exists.
    #[arg(long)]
    force: bool,
}

/// Runs `clintune curate`.
pub fn run(args: CurateArgs) -> anyhow::Result<()> {
    match args.command {
        Some(CurateCommand::Merge(m)) => {
            let s = clintune_curate::merge::merge(&m.shards, &m.out, m.force)
                .context("merge failed; no output was written")?;
            report(&s);
            Ok(())
        }
        None => run_curate(args.run),
    }
}

/// The configuration at `path`, or the defaults.
pub fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<CurateConfig> {
    Ok(match path {
        Some(p) => CurateConfig::load(p)?,
        None => CurateConfig::default(),
    })
}

fn run_curate(a: RunArgs) -> anyhow::Result<()> {
    let (Some(input), Some(out)) = (a.input, a.out) else {
        bail!(
            "`clintune curate` needs --input DIR (a `clintune deid` output) and --out DIR; see `clintune curate --help`"
        );
    };
    let opts = CurateOptions {
        input,
        config: load_config(a.config.as_deref())?,
        tokenizer: a.tokenizer,
        out,
        force: a.force,
        shard: a.shard,
    };
    let started = std::time::Instant::now();
    let s = clintune_curate::pipeline::run_with_progress(&opts, &crate::progress::Bars::default())
        .context("curation failed; no output was written")?;
    report(&s);
    summary!("{:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn report(s: &CurateSummary) {
    let m = &s.manifest;
    let Some(t) = Tallies::from_counts(&m.counts) else {
        summary!("output: {} (manifest {})", s.out.display(), m.id);
        return;
    };
    let patients: u64 = t.patients.values().sum();
    let built: u64 = t.built.values().sum();
    summary!("{patients} patients, {built} examples built");
    if m.stage == clintune_curate::pipeline::SHARD_STAGE {
        summary!("shard candidates written; merge all shards with `clintune curate merge`");
    } else {
        let dup = |k: &str| t.duplicates.get(k).copied().unwrap_or(0);
        let filtered: u64 = t.filtered.values().sum();
        summary!(
            "removed: {filtered} by length filters, {} exact and {} near duplicates",
            dup("exact"),
            dup("near")
        );
        for split in SPLITS {
            summary!(
                "  {split:<10} {:>7} examples {:>10} tokens",
                t.split_examples(split),
                t.split_tokens(split)
            );
        }
    }
    summary!("output: {} (manifest {})", s.out.display(), m.id);
}
