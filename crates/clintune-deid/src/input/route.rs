//! Routing records to patient partitions.
//!
//! A Bulk Data export is grouped by resource type, not by patient, and a
//! patient's notes can only be scrubbed with that patient's identifiers at
//! hand. So records are first routed into partition files by a hash of their
//! patient id; each partition then holds whole patients and is processed on
//! its own, which bounds memory by the partition size, not the input size.

use super::preference::{PairFormat, read_pair};
use super::{InputFile, InputKind, json_problem};
use crate::audit::Audit;
use crate::error::{DeidError, RecordError};
use crate::policy::Policy;
use clintune_core::hash::{FileDigest, HashingReader, bytes_digest, sha256_hex};
use rayon::prelude::*;
use serde_json::Value;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What a routed record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// A FHIR Patient resource.
    Patient,
    /// Any other FHIR resource linked to a patient.
    Resource,
    /// A chat trace.
    Chat,
    /// A preference pair.
    Preference,
}

impl RecordKind {
    fn tag(self) -> char {
        match self {
            RecordKind::Patient => 'P',
            RecordKind::Resource => 'R',
            RecordKind::Chat => 'C',
            RecordKind::Preference => 'Q',
        }
    }

    /// Parses the one-letter tag of a spill line.
    pub fn from_tag(tag: &str) -> Option<Self> {
        match tag {
            "P" => Some(RecordKind::Patient),
            "R" => Some(RecordKind::Resource),
            "C" => Some(RecordKind::Chat),
            "Q" => Some(RecordKind::Preference),
            _ => None,
        }
    }
}

/// Partition files under a private work directory.
#[derive(Debug)]
pub struct Spill {
    paths: Vec<PathBuf>,
    writers: Vec<Mutex<BufWriter<File>>>,
}

impl Spill {
    /// Creates `n` partition files in `dir`.
    pub fn create(dir: &Path, n: usize) -> Result<Self, DeidError> {
        std::fs::create_dir_all(dir).map_err(DeidError::io(dir))?;
        let mut paths = Vec::with_capacity(n);
        let mut writers = Vec::with_capacity(n);
        for i in 0..n {
            let p = dir.join(format!("partition-{i:05}.tsv"));
            let f = File::create(&p).map_err(DeidError::io(&p))?;
            writers.push(Mutex::new(BufWriter::with_capacity(1 << 16, f)));
            paths.push(p);
        }
        Ok(Self { paths, writers })
    }

    /// Partition of a patient id (stable, independent of the key).
    pub fn partition_of(patient_id: &str, n: usize) -> usize {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in patient_id.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        (h % n as u64) as usize
    }

    fn write(&self, rec: &Routed<'_>) -> Result<(), DeidError> {
        let i = Self::partition_of(rec.patient_id, self.writers.len());
        let mut w = self.writers[i].lock().unwrap_or_else(|e| e.into_inner());
        writeln!(
            w,
            "{}\t{}\t{}\t{}\t{}",
            rec.file,
            rec.record,
            rec.patient_id,
            rec.kind.tag(),
            rec.json
        )
        .map_err(DeidError::io(&self.paths[i]))
    }

    /// Flushes and closes the writers; returns the partition paths.
    pub fn finish(self) -> Result<Vec<PathBuf>, DeidError> {
        for (w, p) in self.writers.into_iter().zip(&self.paths) {
            let mut w = w.into_inner().unwrap_or_else(|e| e.into_inner());
            w.flush().map_err(DeidError::io(p))?;
        }
        Ok(self.paths)
    }
}

/// Why a record was not routed: its own fault, which `--skip-invalid` counts,
/// or the machine's (a work file that cannot be written), which always stops
/// the run: counting it would drop valid records unseen.
enum Fault {
    Invalid(RecordError),
    Fatal(DeidError),
}

impl From<RecordError> for Fault {
    fn from(e: RecordError) -> Self {
        Self::Invalid(e)
    }
}

struct Routed<'a> {
    file: usize,
    record: &'a str,
    patient_id: &'a str,
    kind: RecordKind,
    json: &'a str,
}

/// Routing settings.
#[derive(Debug, Clone, Copy)]
pub struct RouteOptions {
    /// Count invalid records instead of failing.
    pub skip_invalid: bool,
}

/// Routes every record of every input into the spill; returns the counts
/// and, per input, its record count and digest. `progress` advances by each
/// file's size as it is done.
pub fn route_all(
    inputs: &[InputFile],
    policy: &Policy,
    spill: &Spill,
    opts: RouteOptions,
    progress: &dyn clintune_core::progress::Progress,
) -> Result<(Audit, Vec<(u64, FileDigest)>), DeidError> {
    let results: Vec<Result<(Audit, u64, FileDigest), DeidError>> = inputs
        .par_iter()
        .enumerate()
        .map(|(i, input)| {
            let r = route_file(i, input, policy, spill, opts);
            if let Ok((_, _, digest)) = &r {
                progress.advance(digest.bytes);
            }
            r
        })
        .collect();
    let mut audit = Audit::default();
    let mut rows = Vec::with_capacity(inputs.len());
    for r in results {
        let (a, n, digest) = r?;
        audit.merge(&a);
        rows.push((n, digest));
    }
    Ok((audit, rows))
}

fn route_file(
    index: usize,
    input: &InputFile,
    policy: &Policy,
    spill: &Spill,
    opts: RouteOptions,
) -> Result<(Audit, u64, FileDigest), DeidError> {
    let mut audit = Audit::default();
    *audit
        .files
        .entry(input.kind.as_str().to_string())
        .or_default() += 1;
    let mut router = Router {
        index,
        input,
        policy,
        spill,
        audit: &mut audit,
        opts,
        aliases: HashMap::new(),
        pair_format: None,
    };
    let (count, digest) = match input.kind {
        InputKind::Bundle => router.bundle()?,
        InputKind::BulkNdjson | InputKind::ChatJsonl | InputKind::PreferenceJsonl => {
            router.lines()?
        }
    };
    Ok((audit, count, digest))
}

struct Router<'a> {
    index: usize,
    input: &'a InputFile,
    policy: &'a Policy,
    spill: &'a Spill,
    audit: &'a mut Audit,
    opts: RouteOptions,
    /// In a Bundle: the id in a Patient entry's `fullUrl` -> the Patient's
    /// own `id`, where they differ, so references by `fullUrl` find it.
    aliases: HashMap<String, String>,
    /// In a preference file: the format of its first pair and where it was,
    /// which every other pair must share.
    pair_format: Option<(PairFormat, String)>,
}

impl Router<'_> {
    fn err(&self, record: &str, field: &str, problem: impl Into<String>) -> RecordError {
        RecordError {
            file: self.input.display(),
            record: record.to_string(),
            field: field.to_string(),
            problem: problem.into(),
        }
    }

    /// Handles a record error: counted under `--skip-invalid`, fatal otherwise.
    fn invalid(&mut self, e: RecordError) -> Result<(), DeidError> {
        if self.opts.skip_invalid {
            *self.audit.invalid.entry(e.reason()).or_default() += 1;
            Ok(())
        } else {
            Err(e.into())
        }
    }

    /// Handles the outcome of routing one record.
    fn settle(&mut self, routed: Result<(), Fault>) -> Result<(), DeidError> {
        match routed {
            Ok(()) => Ok(()),
            Err(Fault::Invalid(e)) => self.invalid(e),
            Err(Fault::Fatal(e)) => Err(e),
        }
    }

    fn lines(&mut self) -> Result<(u64, FileDigest), DeidError> {
        let path = &self.input.path;
        let file = File::open(path).map_err(DeidError::io(path))?;
        let mut reader = BufReader::with_capacity(1 << 20, HashingReader::new(file));
        let mut n = 0;
        for (i, line) in (&mut reader).split(b'\n').enumerate() {
            let line = line.map_err(DeidError::io(path))?;
            let record = format!("line {}", i + 1);
            let text = match std::str::from_utf8(&line) {
                Ok(t) => t.trim(),
                Err(_) => {
                    self.invalid(self.err(&record, "(record)", "not valid UTF-8"))?;
                    continue;
                }
            };
            if text.is_empty() {
                continue;
            }
            n += 1;
            let value: Value = match serde_json::from_str(text) {
                Ok(v) => v,
                Err(e) => {
                    self.invalid(self.err(&record, "(record)", json_problem(&e)))?;
                    continue;
                }
            };
            let routed = match self.input.kind {
                InputKind::ChatJsonl => self.chat(&record, &value, text),
                InputKind::PreferenceJsonl => self.preference(&record, &value, text),
                _ => self.resource(&record, &value, text),
            };
            self.settle(routed)?;
        }
        let digest = reader.into_inner().finish().map_err(DeidError::io(path))?;
        Ok((n, digest))
    }

    fn bundle(&mut self) -> Result<(u64, FileDigest), DeidError> {
        let path = &self.input.path;
        let raw = std::fs::read(path).map_err(DeidError::io(path))?;
        let digest = bytes_digest(&raw);
        let Ok(text) = String::from_utf8(raw) else {
            self.invalid(self.err("document", "(document)", "not valid UTF-8"))?;
            return Ok((0, digest));
        };
        let doc: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                self.invalid(self.err("document", "(document)", json_problem(&e)))?;
                return Ok((0, digest));
            }
        };
        let Some(entries) = doc.get("entry").and_then(Value::as_array) else {
            self.invalid(self.err("document", "entry", "a Bundle needs an `entry` array"))?;
            return Ok((0, digest));
        };
        self.aliases = patient_aliases(entries);
        let mut n = 0;
        for (i, entry) in entries.iter().enumerate() {
            let record = format!("entry {}", i + 1);
            let Some(resource) = entry.get("resource") else {
                self.invalid(self.err(&record, "resource", "missing"))?;
                continue;
            };
            n += 1;
            let json = resource.to_string();
            let routed = self.resource(&record, resource, &json);
            self.settle(routed)?;
        }
        Ok((n, digest))
    }

    fn resource(&mut self, record: &str, value: &Value, json: &str) -> Result<(), Fault> {
        let Some(rt) = value.get("resourceType") else {
            return Err(self.err(record, "resourceType", "missing").into());
        };
        let Some(rt) = rt.as_str() else {
            return Err(self.err(record, "resourceType", "expected a string").into());
        };
        *self
            .audit
            .records_in
            .entry(crate::audit::safe_name(rt))
            .or_default() += 1;
        let Some(rp) = self.policy.resources.get(rt) else {
            self.audit.drop_record("resource type not in policy", rt);
            return Ok(());
        };
        let (patient_id, kind) = if rt == "Patient" {
            let id = value
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| self.err(record, "id", "a Patient needs a string id"))?;
            (id.to_string(), RecordKind::Patient)
        } else {
            let id = self.patient_reference(record, value, &rp.patient)?;
            let id = self.aliases.get(&id).cloned().unwrap_or(id);
            (id, RecordKind::Resource)
        };
        self.emit(record, &patient_id, kind, json)
    }

    fn patient_reference(
        &self,
        record: &str,
        value: &Value,
        fields: &[String],
    ) -> Result<String, RecordError> {
        for f in fields {
            let Some(r) = value.get(f) else { continue };
            let reference = r.get("reference").and_then(Value::as_str).ok_or_else(|| {
                self.err(
                    record,
                    &format!("{f}.reference"),
                    "expected a string reference",
                )
            })?;
            return patient_id_from_reference(reference).ok_or_else(|| {
                self.err(
                    record,
                    &format!("{f}.reference"),
                    "not a Patient/<id> or urn:uuid:<id> reference",
                )
            });
        }
        Err(self.err(
            record,
            fields.first().map_or("subject", String::as_str),
            "missing patient reference",
        ))
    }

    fn chat(&mut self, record: &str, value: &Value, json: &str) -> Result<(), Fault> {
        *self.audit.records_in.entry("ChatTrace".into()).or_default() += 1;
        match value.get("messages") {
            Some(Value::Array(_)) => {}
            Some(_) => {
                return Err(self
                    .err(record, "messages", "expected an array of messages")
                    .into());
            }
            None => return Err(self.err(record, "messages", "missing").into()),
        }
        let patient = self.trace_patient(record, value, json)?;
        self.emit(record, &patient, RecordKind::Chat, json)
    }

    fn preference(&mut self, record: &str, value: &Value, json: &str) -> Result<(), Fault> {
        *self
            .audit
            .records_in
            .entry("PreferencePair".into())
            .or_default() += 1;
        let pair =
            read_pair(value).map_err(|(field, problem)| self.err(record, &field, problem))?;
        match &self.pair_format {
            None => self.pair_format = Some((pair.format, record.to_string())),
            Some((first, at)) if *first != pair.format => {
                let problem = format!(
                    "this file mixes formats: {at} is {}, this record is {}; keep one format per file",
                    first.as_str(),
                    pair.format.as_str()
                );
                return Err(self.err(record, "(record)", problem).into());
            }
            Some(_) => {}
        }
        let patient = self.trace_patient(record, value, json)?;
        self.emit(record, &patient, RecordKind::Preference, json)
    }

    /// The patient of a chat trace or preference pair, from the policy's
    /// patient fields; a record with none is its own pseudo-patient.
    fn trace_patient(
        &self,
        record: &str,
        value: &Value,
        json: &str,
    ) -> Result<String, RecordError> {
        for path in &self.policy.chat.patient_fields {
            match dotted(value, path) {
                // "Patient/123" and "123" are one patient.
                Some(Value::String(s)) if !s.trim().is_empty() => {
                    let s = s.trim();
                    return Ok(patient_id_from_reference(s).unwrap_or_else(|| s.to_string()));
                }
                Some(Value::Number(n)) => return Ok(n.to_string()),
                Some(Value::Null) | None => continue,
                Some(_) => {
                    return Err(self.err(record, path, "expected a string or number patient id"));
                }
            }
        }
        Ok(format!("chat-trace:{}", sha256_hex(json.as_bytes())))
    }

    fn emit(
        &mut self,
        record: &str,
        patient_id: &str,
        kind: RecordKind,
        json: &str,
    ) -> Result<(), Fault> {
        let safe_id;
        let patient_id = if patient_id.chars().any(char::is_control) {
            safe_id = format!("id-sha256:{}", sha256_hex(patient_id.as_bytes()));
            safe_id.as_str()
        } else {
            patient_id
        };
        let record_no = record.rsplit(' ').next().unwrap_or("0");
        let routed = Routed {
            file: self.index,
            record: record_no,
            patient_id,
            kind,
            json,
        };
        self.spill.write(&routed).map_err(Fault::Fatal)
    }
}

/// The `fullUrl` ids of a Bundle's Patient entries that differ from the
/// Patient's `id`, mapped to that `id`.
fn patient_aliases(entries: &[Value]) -> HashMap<String, String> {
    entries
        .iter()
        .filter_map(|entry| {
            let resource = entry.get("resource")?;
            if resource.get("resourceType")?.as_str()? != "Patient" {
                return None;
            }
            let id = resource.get("id")?.as_str()?;
            let from_url = entry
                .get("fullUrl")
                .and_then(Value::as_str)
                .and_then(patient_id_from_reference)?;
            (from_url != id).then(|| (from_url, id.to_string()))
        })
        .collect()
}

/// The id in `Patient/<id>`, `.../Patient/<id>`, `Patient/<id>/_history/<v>`
/// or `urn:uuid:<id>`.
pub fn patient_id_from_reference(reference: &str) -> Option<String> {
    if let Some(id) = reference.strip_prefix("urn:uuid:") {
        return (!id.is_empty()).then(|| id.to_string());
    }
    // A versioned reference names the same patient: `Patient/x/_history/2`.
    let reference = match reference.find("/_history/") {
        Some(at) => &reference[..at],
        None => reference,
    };
    let mut parts = reference.rsplitn(3, '/');
    let id = parts.next()?;
    let ty = parts.next()?;
    (ty == "Patient" && !id.is_empty() && !id.contains('?')).then(|| id.to_string())
}

/// Follows a dotted path (`metadata.patient_id`) through objects.
pub fn dotted<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, key| v.get(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(
            patient_id_from_reference("Patient/123").as_deref(),
            Some("123")
        );
        assert_eq!(
            patient_id_from_reference("https://x/fhir/Patient/1").as_deref(),
            Some("1")
        );
        assert_eq!(
            patient_id_from_reference("urn:uuid:ab-c").as_deref(),
            Some("ab-c")
        );
        assert_eq!(
            patient_id_from_reference("Patient/x/_history/2").as_deref(),
            Some("x")
        );
        assert_eq!(patient_id_from_reference("Practitioner/1"), None);
        assert_eq!(patient_id_from_reference("Patient?identifier=x|1"), None);
    }

    /// A work file that cannot be written (a full disk) stops the run even
    /// under `--skip-invalid`: counting it as an invalid record would drop a
    /// valid one unseen.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_full_disk_is_not_an_invalid_record() {
        let dir = tempfile::tempdir().expect("temp dir");
        let input = dir.path().join("chat.jsonl");
        // Longer than the spill's buffer, so the write reaches the device.
        let text = "x".repeat(1 << 17);
        let line = format!(r#"{{"messages":[{{"role":"user","content":"{text}"}}]}}"#);
        std::fs::write(&input, line).expect("write input");
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full");
        let spill = Spill {
            paths: vec![PathBuf::from("/dev/full")],
            writers: vec![Mutex::new(BufWriter::with_capacity(1 << 16, full))],
        };
        let policy = crate::policy::Policy::builtin().expect("built-in policy");
        let inputs = [InputFile {
            path: input,
            kind: InputKind::ChatJsonl,
        }];
        let opts = RouteOptions { skip_invalid: true };
        let err = route_all(
            &inputs,
            &policy.policy,
            &spill,
            opts,
            &clintune_core::progress::Silent,
        )
        .expect_err("disk full");
        assert!(
            matches!(&err, DeidError::Io { path, .. } if path == Path::new("/dev/full")),
            "{err}"
        );
    }
}
