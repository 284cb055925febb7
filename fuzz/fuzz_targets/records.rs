//! One record as a Bulk NDJSON line, a Bundle entry or a chat trace line
//! holds: any JSON goes through the FHIR or the chat path, with the record
//! itself as the patient when it is a Patient. Bad records must be errors
//! naming their field, never panics.
#![no_main]

use clintune_deid::audit::Audit;
use clintune_deid::identity::KnownIdentifiers;
use clintune_deid::resource::{Applier, Location, PatientCtx};
use clintune_deid::scrub::KnownMatcher;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::collections::BTreeSet;


fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let s = clintune_fuzz::Deid::get();
    let path_words = BTreeSet::new();
    let d = s.deidentifier(&path_words);
    let known = KnownIdentifiers::from_patient(&value);
    let p = PatientCtx {
        patient_key: "p".into(),
        shift_days: -17,
        known: Some(KnownMatcher::new(&known)),
        birth_date: chrono::NaiveDate::from_ymd_opt(1930, 2, 3),
        capped: true,
    };
    let loc = Location {
        file: "fuzz.ndjson".into(),
        record: "line 1".into(),
    };
    let mut audit = Audit::default();
    let mut a = Applier {
        d: &d,
        p: &p,
        loc: &loc,
        audit: &mut audit,
    };
    let _ = a.resource(&value);
    let _ = a.chat(&value, "line 1");
});
