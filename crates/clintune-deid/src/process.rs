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
use std::collections::BTreeMap;
use std::path::Path;

/// One record read back from a partition file.
#[derive(Debug)]
struct Spilled {
    file: usize,
    record: u64,
    kind: RecordKind,
    json: String,
}

/// Settings for processing.
#[derive(Debug, Clone, Copy)]
pub struct ProcessOptions {
    /// Count invalid records instead of failing.
    pub skip_invalid: bool,
}

/// De-identifies all patients of a partition; rows are sorted by patient key,
/// then time, type and record key, so output does not depend on scheduling.
pub fn process_partition(
    d: &Deidentifier<'_>,
    path: &Path,
    inputs: &[InputFile],
    opts: ProcessOptions,
) -> Result<(Vec<Row>, Audit), DeidError> {
    let groups = read_groups(path)?;
    let results: Vec<Result<(Vec<Row>, Audit), RecordError>> = groups
        .into_par_iter()
        .map(|(pid, records)| process_patient(d, &pid, records, inputs, opts))
        .collect();
    let mut rows = Vec::new();
    let mut audit = Audit::default();
    for r in results {
        let (mut r, a) = r?;
        rows.append(&mut r);
        audit.merge(&a);
    }
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
    Ok((rows, audit))
}

fn read_groups(path: &Path) -> Result<BTreeMap<String, Vec<Spilled>>, DeidError> {
    let text = std::fs::read_to_string(path).map_err(DeidError::io(path))?;
    let mut groups: BTreeMap<String, Vec<Spilled>> = BTreeMap::new();
    for line in text.lines() {
        let mut parts = line.splitn(5, '\t');
        let (Some(file), Some(record), Some(pid), Some(kind), Some(json)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(corrupt(path));
        };
        let kind = RecordKind::from_tag(kind).ok_or_else(|| corrupt(path))?;
        let file = file.parse().map_err(|_| corrupt(path))?;
        let record = record.parse().map_err(|_| corrupt(path))?;
        groups.entry(pid.to_string()).or_default().push(Spilled {
            file,
            record,
            kind,
            json: json.to_string(),
        });
    }
    for records in groups.values_mut() {
        records.sort_by_key(|r| (r.file, r.record));
    }
    Ok(groups)
}

fn corrupt(path: &Path) -> DeidError {
    DeidError::Output {
        path: path.to_path_buf(),
        message: "work file is corrupt".into(),
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
) -> Result<(Vec<Row>, Audit), RecordError> {
    let mut audit = Audit::default();
    let mut parsed = Vec::with_capacity(records.len());
    for r in records {
        let loc = location(inputs, &r);
        match serde_json::from_str::<Value>(&r.json) {
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
    let patient = parsed
        .iter()
        .find(|(r, _, _)| r.kind == RecordKind::Patient)
        .map(|(_, v, _)| v);
    let ctx = patient_ctx(d, pid, patient);
    let mut rows = Vec::with_capacity(parsed.len());
    let mut seen_patient = false;
    for (r, value, loc) in &parsed {
        if r.kind == RecordKind::Patient {
            if seen_patient {
                audit.drop_record("duplicate Patient resource", "Patient");
                continue;
            }
            seen_patient = true;
        }
        let mut applier = Applier {
            d,
            p: &ctx,
            loc,
            audit: &mut audit,
        };
        let result = match r.kind {
            RecordKind::Chat => applier.chat(value, &format!("{}:{}", r.file, r.record)),
            _ => applier.resource(value),
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
    audit.patients_with_record = u64::from(seen_patient);
    Ok((rows, audit))
}

fn patient_ctx(d: &Deidentifier<'_>, pid: &str, patient: Option<&Value>) -> PatientCtx {
    let dates = &d.policy.dates;
    let known = patient.map(KnownIdentifiers::from_patient);
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
