//! The de-identification run: discover, route, process, write, account.

use crate::audit::Audit;
use crate::error::DeidError;
use crate::input::route::{RouteOptions, Spill, route_all};
use crate::input::{InputFile, InputKind, discover};
use crate::output::write_parquet;
use crate::policy::{LoadedPolicy, PolicySource};
use crate::process::{ProcessOptions, Processed, process_partition};
use crate::pseudonym::Pseudonymizer;
use crate::resource::Deidentifier;
use chrono::NaiveDate;
use clintune_core::hash::{FileDigest, file_digest, sha256_hex};
use clintune_core::progress::{Progress, Silent};
use clintune_core::secret::SecretKey;
use clintune_core::staging::StagingDir;
use clintune_lineage::manifest::absolute_path;
use clintune_lineage::{FileEntry, Manifest, ManifestBuilder};
use serde_json::json;
use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

/// Default input bytes per partition: bounds the memory one partition needs.
pub const DEFAULT_PARTITION_MB: u64 = 256;

/// Upper bound on partitions (open files while routing).
const MAX_PARTITIONS: u64 = 512;

/// Settings of a de-identification run.
#[derive(Debug, Clone)]
pub struct DeidOptions {
    /// Input files or directories.
    pub inputs: Vec<PathBuf>,
    /// The policy file; `None`: the built-in policy ([`crate::builtin`]).
    pub policy: Option<PathBuf>,
    /// Output directory (created atomically).
    pub out: PathBuf,
    /// Replace an existing output directory.
    pub force: bool,
    /// Count invalid records instead of failing.
    pub skip_invalid: bool,
    /// Date as of which ages of living patients are computed.
    pub as_of: NaiveDate,
    /// Input bytes per partition (memory per partition grows with it).
    pub partition_bytes: u64,
}

/// What a run produced.
#[derive(Debug)]
pub struct DeidSummary {
    /// The committed output directory.
    pub out: PathBuf,
    /// The manifest written.
    pub manifest: Manifest,
    /// The counts.
    pub audit: Audit,
    /// Input bytes read.
    pub input_bytes: u64,
    /// Wall time in seconds.
    pub seconds: f64,
    /// The policy used: its file, or the built-in policy's name.
    pub policy: String,
}

/// De-identifies `opts.inputs` into `opts.out`. Nothing appears at `opts.out`
/// unless every record was processed (or counted, under `skip_invalid`).
pub fn run(opts: &DeidOptions, key: &SecretKey) -> Result<DeidSummary, DeidError> {
    run_with_progress(opts, key, &Silent)
}

/// [`run`], reporting its phases (grouping records by patient, then
/// de-identifying partitions) to `progress`.
pub fn run_with_progress(
    opts: &DeidOptions,
    key: &SecretKey,
    progress: &dyn Progress,
) -> Result<DeidSummary, DeidError> {
    let started = Instant::now();
    let loaded = LoadedPolicy::from_arg(opts.policy.as_deref())?;
    let scrubber = loaded.scrubber()?;
    let (inputs, skipped) = discover(&opts.inputs)?;
    if inputs.is_empty() {
        let shown: Vec<String> = opts
            .inputs
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        return Err(DeidError::NoInput(shown.join(", ")));
    }
    let input_bytes: u64 = inputs
        .iter()
        .filter_map(|i| std::fs::metadata(&i.path).ok())
        .map(|m| m.len())
        .sum();
    tracing::info!(
        files = inputs.len(),
        skipped,
        bytes = input_bytes,
        "de-identification: inputs found"
    );

    let staging = StagingDir::new(&opts.out, opts.force)?;
    for left in staging.swept() {
        tracing::warn!(
            path = %left.display(),
            "removed the work folder of an earlier de-identification that was killed before it could clean up (it held raw records)"
        );
    }
    let work = staging.path().join(".work");
    let partitions = input_bytes
        .div_ceil(opts.partition_bytes.max(1))
        .clamp(1, MAX_PARTITIONS) as usize;
    let spill = Spill::create(&work, partitions)?;
    let route_opts = RouteOptions {
        skip_invalid: opts.skip_invalid,
    };
    progress.begin("grouping", input_bytes, "bytes");
    let (mut audit, input_rows) = route_all(&inputs, &loaded.policy, &spill, route_opts, progress)?;
    progress.end();
    *audit
        .files
        .entry("skipped (not a record file)".into())
        .or_default() += skipped;
    let parts = spill.finish()?;

    let pseudonymizer = Pseudonymizer::new(key.clone());
    let path_words = folder_words(&inputs);
    let d = Deidentifier {
        policy: &loaded.policy,
        scrubber: &scrubber,
        pseudonymizer: &pseudonymizer,
        as_of: opts.as_of,
        path_words: &path_words,
    };
    let process_opts = ProcessOptions {
        skip_invalid: opts.skip_invalid,
    };
    let records_dir = staging.path().join("records");
    std::fs::create_dir_all(&records_dir).map_err(DeidError::io(&records_dir))?;
    progress.begin("de-identify", parts.len() as u64, "partitions");
    let mut outputs = Vec::new();
    let mut names = BTreeSet::new();
    for (i, part) in parts.iter().enumerate() {
        let Processed {
            rows,
            audit: a,
            mut names_in_paths,
        } = process_partition(&d, part, &inputs, process_opts)?;
        audit.merge(&a);
        names.append(&mut names_in_paths);
        std::fs::remove_file(part).map_err(DeidError::io(part))?;
        progress.advance(1);
        if rows.is_empty() {
            continue;
        }
        let name = format!("records/part-{i:05}.parquet");
        let count = rows.len() as u64;
        write_parquet(&staging.path().join(&name), rows)?;
        outputs.push((name, count));
    }
    progress.end();
    std::fs::remove_dir_all(&work).map_err(DeidError::io(&work))?;

    let manifest = write_reports(
        &staging,
        &loaded,
        key,
        (&inputs, &input_rows, &names),
        &outputs,
        &audit,
        opts,
        &d,
    )?;
    let out = staging.commit()?;
    Ok(DeidSummary {
        out,
        manifest,
        audit,
        input_bytes,
        seconds: started.elapsed().as_secs_f64(),
        policy: loaded.source.to_string(),
    })
}

#[allow(clippy::too_many_arguments)]
fn write_reports(
    staging: &StagingDir,
    loaded: &LoadedPolicy,
    key: &SecretKey,
    (inputs, input_rows, names): (&[InputFile], &[(u64, FileDigest)], &BTreeSet<String>),
    outputs: &[(String, u64)],
    audit: &Audit,
    opts: &DeidOptions,
    d: &Deidentifier<'_>,
) -> Result<Manifest, DeidError> {
    let dir = staging.path();
    let audit_path = dir.join("audit.json");
    let mut text = serde_json::to_string_pretty(&audit.to_json()).expect("audit serializes");
    text.push('\n');
    std::fs::write(&audit_path, text).map_err(DeidError::io(&audit_path))?;

    let config = json!({
        "policy_sha256": sha256_hex(loaded.text.as_bytes()),
        "dictionaries_sha256": loaded.dictionaries.hash()?,
        "site_terms_sha256": match &loaded.site_terms {
            Some(p) => Some(file_digest(p).map_err(DeidError::io(p))?.sha256),
            None => None,
        },
        "key_id": key.key_id(),
        "as_of": opts.as_of.to_string(),
        "skip_invalid": opts.skip_invalid,
    });
    let config_hash = clintune_lineage::manifest::content_hash(&config);
    let mut b = ManifestBuilder::new("deid", config_hash)
        .config("policy", loaded.policy.name.clone())
        .config("text_mode", loaded.policy.text.mode.as_str())
        .config("text_decider", d.scrubber.decider())
        .config("key_id", key.key_id())
        .config("as_of", opts.as_of.to_string())
        .config("skip_invalid", opts.skip_invalid)
        .input(policy_entry(loaded));
    for (input, (rows, digest)) in inputs.iter().zip(input_rows) {
        b = b.input(input_entry(input, *rows, digest, d, names));
    }
    for (name, rows) in outputs {
        b = b.output(file_entry(
            &dir.join(name),
            name.clone(),
            Some(*rows),
            "parquet",
        )?);
    }
    b = b.output(file_entry(
        &audit_path,
        "audit.json".into(),
        None,
        "audit-report",
    )?);
    let manifest = b.counts(audit.manifest_counts()).finish();
    manifest.write(dir)?;
    Ok(manifest)
}

/// The policy as an input: the text that was read, under its absolute path
/// (or the built-in policy's name, which no file on disk matches).
fn policy_entry(loaded: &LoadedPolicy) -> FileEntry {
    let path = match &loaded.source {
        PolicySource::File(path) => absolute_path(path),
        PolicySource::Builtin => crate::builtin::NAME.to_string(),
    };
    FileEntry {
        path,
        sha256: sha256_hex(loaded.text.as_bytes()),
        bytes: loaded.text.len() as u64,
        rows: None,
        kind: None,
        redacted: false,
        built_in: loaded.source == PolicySource::Builtin,
    }
    .with_kind("deid-policy")
}

fn file_entry(
    path: &Path,
    name: String,
    rows: Option<u64>,
    kind: &str,
) -> Result<FileEntry, DeidError> {
    FileEntry::from_file(path, name, rows)
        .map(|e| e.with_kind(kind))
        .map_err(DeidError::io(path))
}

/// Records an input by the digest taken while it was read. Input names can
/// identify a patient (Bundle files are often named after them, export
/// folders after a patient or a date), so a file name is kept only when it
/// is a Bulk Data name (`Type.NNN.ndjson`), and each folder name only when
/// the detector finds nothing in it, the run's patients' names included;
/// any other part becomes a keyed pseudonym, and the rest of the path stays
/// so that `lineage verify` can still find the file.
fn input_entry(
    input: &InputFile,
    rows: u64,
    digest: &FileDigest,
    d: &Deidentifier<'_>,
    names: &BTreeSet<String>,
) -> FileEntry {
    let name = input
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let shown = absolute_path(&input.path);
    let bulk = input.kind == InputKind::BulkNdjson && is_bulk_name(&name);
    let file = if bulk {
        name
    } else {
        format!(
            "input-{}",
            d.pseudonymizer.identifier("input-file", &digest.sha256)
        )
    };
    let (folder, folders_redacted) = match Path::new(&shown).parent() {
        Some(parent) => clean_folders(parent, d, names),
        None => (String::new(), false),
    };
    FileEntry {
        path: if folder.is_empty() {
            file
        } else {
            format!("{folder}/{file}")
        },
        sha256: digest.sha256.clone(),
        bytes: digest.bytes,
        rows: Some(rows),
        kind: Some(input.kind.as_str().to_string()),
        redacted: !bulk || folders_redacted,
        built_in: false,
    }
}

/// The folder path with every part in which the detector finds PHI, or a
/// name of one of the run's patients (`names`, lower case), replaced by a
/// keyed pseudonym (`dir-…`), and whether any part was.
fn clean_folders(folder: &Path, d: &Deidentifier<'_>, names: &BTreeSet<String>) -> (String, bool) {
    let mut redacted = false;
    let parts: Vec<String> = folder
        .components()
        .map(|c| {
            let raw = c.as_os_str().to_string_lossy();
            let words = raw.replace(['_', '-', '.'], " ");
            let named = path_words(&raw).iter().any(|w| names.contains(w));
            let clean = !raw.chars().any(char::is_control)
                && !named
                // The rules alone: a folder name is not prose, whose
                // contexts the model weighs, and a random temporary name
                // is not an identifier of anyone.
                && d.scrubber.detect_with(&words, None, None).is_empty();
            if clean || matches!(c, Component::RootDir | Component::Prefix(_)) {
                raw.into_owned()
            } else {
                redacted = true;
                format!("dir-{}", d.pseudonymizer.identifier("input-folder", &raw))
            }
        })
        .collect();
    let joined: PathBuf = parts.iter().collect();
    (joined.to_string_lossy().into_owned(), redacted)
}

/// The lower-case words of a folder name.
fn path_words(part: &str) -> Vec<String> {
    part.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3)
        .map(str::to_lowercase)
        .collect()
}

/// The words of every input's folder names.
fn folder_words(inputs: &[InputFile]) -> BTreeSet<String> {
    inputs
        .iter()
        .filter_map(|i| {
            Path::new(&absolute_path(&i.path))
                .parent()
                .map(Path::to_path_buf)
        })
        .flat_map(|p| {
            p.components()
                .flat_map(|c| path_words(&c.as_os_str().to_string_lossy()))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn is_bulk_name(name: &str) -> bool {
    let mut parts = name.split('.');
    let (Some(ty), Some(num), Some(ext), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    ty.bytes().all(|b| b.is_ascii_alphabetic())
        && num.bytes().all(|b| b.is_ascii_digit())
        && ext == "ndjson"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_names() {
        assert!(is_bulk_name("Patient.000.ndjson"));
        assert!(!is_bulk_name("Edward_Gulgowski_43481611.json"));
        assert!(!is_bulk_name("Jane Doe.000.ndjson"));
    }
}
