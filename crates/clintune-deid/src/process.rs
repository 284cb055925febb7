//! Processing one partition: group its records by patient and de-identify
//! each patient in parallel.

use crate::audit::Audit;
use crate::dates::age_years;
use crate::error::{DeidError, RecordError};
use crate::identity::KnownIdentifiers;
use crate::input::route::RecordKind;
use crate::input::{InputFile, InputKind};
use crate::output::Row;
use crate::resource::{Applier, Deidentifier, Location, PatientCtx};
use crate::scrub::KnownMatcher;
use rayon::prelude::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;

/// One record read back from a partition file.
#[derive(Debug)]
struct Spilled {
    file: usize,
    record: u64,
    kind: RecordKind,
    /// The record's JSON; emptied once parsed.
    json: String,
    /// Its length in bytes, kept after it is parsed.
    size: usize,
}

/// Settings for processing.
#[derive(Debug, Clone, Copy)]
pub struct ProcessOptions {
    /// Count invalid records instead of failing.
    pub skip_invalid: bool,
}

/// What one partition gave.
#[derive(Debug, Default)]
pub struct Processed {
    /// De-identified rows, sorted by patient key, then time, type and record
    /// key, so output does not depend on scheduling.
    pub rows: Vec<Row>,
    /// The counts.
    pub audit: Audit,
    /// Words of the input folder names that are a patient's or relative's
    /// name, so that the manifest can keep those folders out. Never written.
    pub names_in_paths: BTreeSet<String>,
}

/// De-identifies all patients of a partition.
pub fn process_partition(
    d: &Deidentifier<'_>,
    path: &Path,
    inputs: &[InputFile],
    opts: ProcessOptions,
) -> Result<Processed, DeidError> {
    let groups = read_groups(path)?;
    let results: Vec<Result<Processed, RecordError>> = groups
        .into_par_iter()
        .map(|(pid, records)| process_patient(d, &pid, records, inputs, opts))
        .collect();
    let mut out = Processed::default();
    for r in results {
        let mut p = r?;
        out.rows.append(&mut p.rows);
        out.audit.merge(&p.audit);
        out.names_in_paths.append(&mut p.names_in_paths);
    }
    let rows = &mut out.rows;
    rows.sort_by(|a, b| {
        (
            &a.patient_key,
            &a.timestamp,
            &a.resource_type,
            &a.record_key,
        )
            .cmp(&(
                &b.patient_key,
                &b.timestamp,
                &b.resource_type,
                &b.record_key,
            ))
    });
    Ok(out)
}

/// Reads a partition file line by line: each record's JSON is the line's own
/// buffer, cut after its header, so a huge record is held once, not as the
/// file's text and a copy.
fn read_groups(path: &Path) -> Result<BTreeMap<String, Vec<Spilled>>, DeidError> {
    let file = std::fs::File::open(path).map_err(DeidError::io(path))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut groups: BTreeMap<String, Vec<Spilled>> = BTreeMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).map_err(DeidError::io(path))? == 0 {
            break;
        }
        if line.ends_with('\n') {
            line.pop();
        }
        let (pid, spilled) = spilled(line).ok_or_else(|| corrupt(path))?;
        groups.entry(pid).or_default().push(spilled);
    }
    for records in groups.values_mut() {
        records.sort_by_key(|r| (r.file, r.record));
    }
    Ok(groups)
}

/// A work file line, `file \t record \t patient \t kind \t json`, as the
/// patient id and the record.
fn spilled(mut line: String) -> Option<(String, Spilled)> {
    let mut parts = line.splitn(5, '\t');
    let (file, record, pid, kind) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let json_at = parts.next().map(|json| line.len() - json.len())?;
    let header = Spilled {
        file: file.parse().ok()?,
        record: record.parse().ok()?,
        kind: RecordKind::from_tag(kind)?,
        json: String::new(),
        size: 0,
    };
    let pid = pid.to_string();
    line.drain(..json_at);
    crate::output::fit(&mut line);
    let size = line.len();
    Some((
        pid,
        Spilled {
            json: line,
            size,
            ..header
        },
    ))
}

fn corrupt(path: &Path) -> DeidError {
    DeidError::Output {
        path: path.to_path_buf(),
        source: "work file is corrupt".into(),
    }
}

fn location(inputs: &[InputFile], r: &Spilled) -> Location {
    let input = &inputs[r.file];
    let unit = if input.kind == InputKind::Bundle {
        "entry"
    } else {
        "line"
    };
    Location {
        file: input.display(),
        record: format!("{unit} {}", r.record),
    }
}

fn process_patient(
    d: &Deidentifier<'_>,
    pid: &str,
    records: Vec<Spilled>,
    inputs: &[InputFile],
    opts: ProcessOptions,
) -> Result<Processed, RecordError> {
    let mut audit = Audit::default();
    let mut parsed = Vec::with_capacity(records.len());
    for mut r in records {
        let loc = location(inputs, &r);
        let value = serde_json::from_str::<Value>(&r.json);
        // The parsed value is all that is read from here on.
        r.json = String::new();
        match value {
            Ok(v) => parsed.push((r, v, loc)),
            Err(_) => {
                return Err(RecordError {
                    file: loc.file,
                    record: loc.record,
                    field: "(record)".into(),
                    problem: "not valid JSON".into(),
                });
            }
        }
    }
    // Several Patient resources of one patient (a stub and the full one, or
    // one per file): their identifiers are all searched for, and the fullest
    // one is written.
    let primary = parsed
        .iter()
        .enumerate()
        .filter(|(_, (r, _, _))| r.kind == RecordKind::Patient)
        .max_by_key(|(k, (r, _, _))| (r.size, std::cmp::Reverse(*k)))
        .map(|(k, _)| k);
    let known = parsed
        .iter()
        .filter(|(r, _, _)| r.kind == RecordKind::Patient)
        .map(|(_, v, _)| KnownIdentifiers::from_patient(v))
        .reduce(|mut a, b| {
            a.merge(b);
            a
        });
    let names_in_paths = known
        .as_ref()
        .map(|k| {
            k.name_words()
                .into_iter()
                .map(|w| w.to_lowercase())
                .filter(|w| d.path_words.contains(w))
                .collect()
        })
        .unwrap_or_default();
    let ctx = patient_ctx(d, pid, known);
    let mut rows = Vec::with_capacity(parsed.len());
    // Consumed, so each record's parsed value is freed once its row is made.
    for (k, (r, value, loc)) in parsed.into_iter().enumerate() {
        if r.kind == RecordKind::Patient && Some(k) != primary {
            audit.drop_record("duplicate Patient resource (identifiers merged)", "Patient");
            continue;
        }
        let mut applier = Applier {
            d,
            p: &ctx,
            loc: &loc,
            audit: &mut audit,
        };
        let result = match r.kind {
            RecordKind::Chat => applier.chat(&value, &format!("{}:{}", r.file, r.record)),
            RecordKind::Preference => {
                applier.preference(&value, &format!("{}:{}", r.file, r.record))
            }
            _ => applier.resource(&value),
        };
        match result {
            Ok(row) => {
                *audit
                    .records_out
                    .entry(row.resource_type.clone())
                    .or_default() += 1;
                rows.push(row);
            }
            Err(e) if opts.skip_invalid => *audit.invalid.entry(e.reason()).or_default() += 1,
            Err(e) => return Err(e),
        }
    }
    audit.patients = 1;
    audit.patients_with_record = u64::from(primary.is_some());
    if primary.is_none() {
        // Their text was scrubbed without the patient's own identifiers.
        audit.records_without_patient_record = rows.len() as u64;
    }
    Ok(Processed {
        rows,
        audit,
        names_in_paths,
    })
}

fn patient_ctx(d: &Deidentifier<'_>, pid: &str, known: Option<KnownIdentifiers>) -> PatientCtx {
    let dates = &d.policy.dates;
    let birth_date = known.as_ref().and_then(|k| k.birth_date);
    let as_of = known.as_ref().and_then(|k| k.deceased).unwrap_or(d.as_of);
    let capped = birth_date.is_some_and(|b| age_years(b, as_of) >= dates.age_cap as i32);
    PatientCtx {
        patient_key: d.pseudonymizer.patient_key(pid),
        shift_days: d
            .pseudonymizer
            .shift_days(pid, dates.min_shift_days, dates.max_shift_days),
        known: known.as_ref().map(KnownMatcher::new),
        birth_date,
        capped,
    }
}
