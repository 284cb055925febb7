//! The audit report: what the stage replaced, dropped and skipped, by count.
//!
//! Only counts and schema names go in: never a value from a record. Field and
//! resource names that do not look like FHIR element names are counted under
//! a placeholder, since an unknown key could itself carry PHI.

use crate::scrub::{Category, Rule, Tally};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Counts gathered while de-identifying.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    /// Files read, by detected kind.
    pub files: BTreeMap<String, u64>,
    /// Patients written (a chat trace without a patient id counts as one).
    pub patients: u64,
    /// Of those, patients with a FHIR Patient resource.
    pub patients_with_record: u64,
    /// Records written for patients without a Patient resource (notes given
    /// without their Patient file, chat traces): their text was scrubbed
    /// without the patient's own identifiers.
    pub records_without_patient_record: u64,
    /// Records read, by resource type.
    pub records_in: BTreeMap<String, u64>,
    /// Records written, by resource type.
    pub records_out: BTreeMap<String, u64>,
    /// Whole records dropped: reason -> resource type -> count.
    pub records_dropped: BTreeMap<String, BTreeMap<String, u64>>,
    /// Fields dropped, by `Type.path`.
    pub fields_dropped: BTreeMap<String, u64>,
    /// PHI replaced in free text and structured fields.
    pub phi: Tally,
    /// Invalid records skipped under `--skip-invalid`, by field and problem.
    pub invalid: BTreeMap<String, u64>,
}

/// Keeps a schema name if it looks like one; PHI cannot hide in it then.
pub fn safe_name(name: &str) -> String {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'[' || b == b']');
    if ok {
        name.to_string()
    } else {
        "<unrecognized-name>".to_string()
    }
}

impl Audit {
    /// Counts a dropped field.
    pub fn drop_field(&mut self, resource_type: &str, path: &str) {
        *self
            .fields_dropped
            .entry(format!("{}.{}", safe_name(resource_type), safe_name(path)))
            .or_default() += 1;
    }

    /// Counts a dropped record.
    pub fn drop_record(&mut self, reason: &str, resource_type: &str) {
        *self
            .records_dropped
            .entry(reason.to_string())
            .or_default()
            .entry(safe_name(resource_type))
            .or_default() += 1;
    }

    /// Counts a structured identifier removed (e.g. `Patient.name`).
    pub fn structured_phi(&mut self, category: Category) {
        self.phi.add(category, Rule::StructuredField);
    }

    /// Adds another audit into this one.
    pub fn merge(&mut self, o: &Audit) {
        fn add(a: &mut BTreeMap<String, u64>, b: &BTreeMap<String, u64>) {
            for (k, v) in b {
                *a.entry(k.clone()).or_default() += v;
            }
        }
        add(&mut self.files, &o.files);
        self.patients += o.patients;
        self.patients_with_record += o.patients_with_record;
        self.records_without_patient_record += o.records_without_patient_record;
        add(&mut self.records_in, &o.records_in);
        add(&mut self.records_out, &o.records_out);
        for (reason, m) in &o.records_dropped {
            add(self.records_dropped.entry(reason.clone()).or_default(), m);
        }
        add(&mut self.fields_dropped, &o.fields_dropped);
        self.phi.merge(&o.phi);
        add(&mut self.invalid, &o.invalid);
    }

    fn phi_json(&self) -> Value {
        let mut by_cat: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
        for ((cat, rule), n) in &self.phi.counts {
            *by_cat.entry(cat).or_default().entry(rule).or_default() += n;
        }
        json!(by_cat)
    }

    /// The full report as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "files": self.files,
            "patients": self.patients,
            "patients_with_record": self.patients_with_record,
            "records_without_patient_record": self.records_without_patient_record,
            "records_in": self.records_in,
            "records_out": self.records_out,
            "records_dropped": self.records_dropped,
            "fields_dropped": self.fields_dropped,
            "phi_replaced": self.phi_json(),
            "phi_replaced_total": self.phi.total(),
            "invalid_records_skipped": self.invalid,
        })
    }

    /// The summary counts that go into the lineage manifest.
    pub fn manifest_counts(&self) -> Map<String, Value> {
        let mut m = Map::new();
        let sum = |x: &BTreeMap<String, u64>| x.values().sum::<u64>();
        m.insert("patients".into(), self.patients.into());
        m.insert(
            "patients_with_record".into(),
            self.patients_with_record.into(),
        );
        m.insert(
            "records_without_patient_record".into(),
            self.records_without_patient_record.into(),
        );
        m.insert("records_in".into(), sum(&self.records_in).into());
        m.insert("records_out".into(), sum(&self.records_out).into());
        m.insert("records_out_by_type".into(), json!(self.records_out));
        m.insert(
            "records_dropped".into(),
            self.records_dropped.values().map(sum).sum::<u64>().into(),
        );
        m.insert("fields_dropped".into(), sum(&self.fields_dropped).into());
        let mut by_cat: BTreeMap<&str, u64> = BTreeMap::new();
        for ((cat, _), n) in &self.phi.counts {
            *by_cat.entry(cat).or_default() += n;
        }
        m.insert("phi_replaced".into(), json!(by_cat));
        m.insert("invalid_records_skipped".into(), sum(&self.invalid).into());
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_are_not_echoed() {
        assert_eq!(safe_name("valueString"), "valueString");
        assert_eq!(safe_name("John Smith 555-1234"), "<unrecognized-name>");
        // The reasons the stage itself writes must survive.
        for own in [
            "content.attachment.not_text_plain",
            "messages.role_not_in_policy",
            "period.start",
        ] {
            assert_eq!(safe_name(own), own);
        }
    }
}
