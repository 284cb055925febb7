//! `clintune keygen`: create a de-identification key file.

use anyhow::{Context, bail};
use clap::Args;
use std::io::Write;
use std::path::PathBuf;

/// Arguments of `clintune keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the key (refuses to overwrite an existing file).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

/// Writes 32 random bytes, hex-encoded, to a new file readable by its owner only.
pub fn run(args: KeygenArgs) -> anyhow::Result<()> {
    if args.out.exists() {
        bail!(
            "{} already exists; a key is never overwritten (pseudonyms made with it would become unlinkable)",
            args.out.display()
        );
    }
    let key =
        clintune_core::secret::generate_key_hex().context("reading the system's random source")?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    writeln!(f, "{key}").with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!(
        "wrote a new key to {} (keep it secret, and back it up: the same key gives the same pseudonyms)",
        args.out.display()
    );
    Ok(())
}
