//! Hostile but valid inputs: one invented patient whose identifiers are
//! placed where a detector tuned on tidy notes would miss them. Each test is
//! one leak found by trying, and what must hold instead.

mod common;

use base64::Engine;
use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// Every output row as one string: the text and the kept fields.
fn all_output(out: &Path) -> String {
    read_rows(out)
        .iter()
        .map(|r| format!("{} {}\n", r.text.as_deref().unwrap_or(""), r.fields))
        .collect()
}

fn assert_gone(output: &str, planted: &[&str]) {
    let lower = output.to_lowercase();
    for p in planted {
        assert!(
            !lower.contains(&p.to_lowercase()),
            "{p:?} survived de-identification"
        );
    }
}

/// The repository's policy with `[text] mode` set, written to `dir`.
fn policy_with_mode(dir: &Path, mode: &str) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("deid/safe-harbor.toml")).unwrap();
    let dicts = repo().join("deid/dictionaries");
    let text = text
        .replace(
            "dictionaries = \"dictionaries\"",
            &format!("dictionaries = {:?}", dicts.display().to_string()),
        )
        .replace("mode = \"balanced\"", &format!("mode = \"{mode}\""));
    assert!(text.contains(&format!("mode = \"{mode}\"")));
    let path = dir.join(format!("policy-{mode}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn note(patient_ref: &str, text: &str) -> Value {
    json!({"resourceType": "DocumentReference", "id": "note-1", "status": "current",
        "subject": {"reference": patient_ref}, "date": "2020-01-02T10:00:00Z",
        "content": [{"attachment": {"contentType": "text/plain",
            "data": base64::engine::general_purpose::STANDARD.encode(text)}}]})
}

fn patient(id: &str, family: &str, given: &str) -> Value {
    json!({"resourceType": "Patient", "id": id, "gender": "female", "birthDate": "1961-04-02",
        "name": [{"family": family, "given": [given]}],
        "telecom": [{"system": "phone", "value": "(617) 555-0199"}]})
}

fn write_lines(path: &Path, values: &[Value]) {
    let text: String = values.iter().map(|v| format!("{v}\n")).collect();
    std::fs::write(path, text).unwrap();
}

#[test]
fn lower_and_upper_case_names_in_chat_traces_go_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let traces = dir.path().join("traces.jsonl");
    let dialogue = "[doctor] hi michelle what's been going on ?\n\
        [patient] my hip , since my daughter nevaeh moved me to frostburg .\n\
        [doctor] kayla ward , date of birth march fourteenth nineteen fifty ?\n\
        [doctor] so jerry is a 45 -year-old male . thanks jerry .";
    let shouted = "[DOCTOR] HI MICHELLE, THIS IS DR. QUAXWORTH. CALL ME AT 617 555 0199.";
    write_lines(
        &traces,
        &[
            json!({"patient_id": "t1", "messages": [
                {"role": "user", "content": dialogue},
                {"role": "assistant", "content": "Michelle Ward is a 45-year-old seen for hip pain."}]}),
            json!({"patient_id": "t2", "messages": [
                {"role": "user", "content": shouted},
                {"role": "assistant", "content": "Noted."}]}),
        ],
    );
    let planted = [
        "michelle",
        "nevaeh",
        "frostburg",
        "kayla",
        "ward",
        "jerry",
        "quaxworth",
        "555 0199",
        "march fourteenth",
    ];
    for mode in ["balanced", "strict"] {
        let out = dir.path().join(format!("out-{mode}"));
        let policy = policy_with_mode(dir.path(), mode);
        ok(&deid(
            &[&traces],
            &out,
            KEY_A,
            &["--policy", policy.to_str().unwrap()],
        ));
        let text = all_output(&out);
        assert_gone(&text, &planted);
        // The clinical content is still there.
        assert!(text.contains("hip"), "{mode}: {text}");
        let manifest = std::fs::read_to_string(out.join("manifest.json")).unwrap();
        assert!(
            manifest.contains(&format!("\"text_mode\": \"{mode}\"")),
            "{manifest}"
        );
    }
}

#[test]
fn a_bundle_patient_found_by_full_url_keeps_its_identifiers() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    // The Patient's id differs from its fullUrl, which the note references.
    let bundle = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:0f1e2d3c", "resource": patient("p-17", "Quaxworth-Smythe", "Fenella")},
        {"fullUrl": "urn:uuid:aa11", "resource": note("urn:uuid:0f1e2d3c",
            "Ms. smythe called; FENELLA QUAXWORTH-SMYTHE, F. confirmed. Reach her at 617 555 0199.")}]});
    std::fs::write(input.join("b.json"), bundle.to_string()).unwrap();
    let out = dir.path().join("out");
    ok(&deid(&[&input], &out, KEY_A, &[]));
    let rows = read_rows(&out);
    let keys: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r.patient_key.as_str()).collect();
    assert_eq!(keys.len(), 1, "the note lost its patient");
    assert_gone(
        &all_output(&out),
        &["smythe", "quaxworth", "fenella", "0199"],
    );
}

#[test]
fn stub_and_full_patients_merge_and_versioned_references_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bulk");
    std::fs::create_dir(&input).unwrap();
    write_lines(
        &input.join("Patient.000.ndjson"),
        &[
            json!({"resourceType": "Patient", "id": "p-9", "gender": "male"}),
            patient("p-9", "Zorblatt", "Ignatius"),
        ],
    );
    write_lines(
        &input.join("DocumentReference.000.ndjson"),
        &[note(
            "Patient/p-9/_history/2",
            "Mr. ZORBLATT (Iggy to friends) seen; zorblatt's wife at bedside.",
        )],
    );
    // Notes given without their Patient: counted, and still scrubbed.
    write_lines(
        &input.join("DocumentReference.001.ndjson"),
        &[note("Patient/nobody", "Seen with Dr. Blenkinsop today.")],
    );
    let traces = dir.path().join("chat.jsonl");
    write_lines(
        &traces,
        &[json!({"patient_id": "Patient/p-9", "messages": [
            {"role": "user", "content": "ignatius zorblatt asks about his refill"},
            {"role": "assistant", "content": "Refill sent."}]})],
    );
    let out = dir.path().join("out");
    ok(&deid(&[&input, &traces], &out, KEY_A, &[]));
    assert_gone(&all_output(&out), &["zorblatt", "ignatius", "blenkinsop"]);
    let rows = read_rows(&out);
    let key_of = |rt: &str| {
        rows.iter()
            .filter(|r| r.resource_type == rt)
            .map(|r| r.patient_key.clone())
            .collect::<Vec<_>>()
    };
    let patient_key = key_of("Patient");
    assert_eq!(patient_key.len(), 1, "duplicate Patients were not merged");
    assert!(key_of("ChatTrace").iter().all(|k| *k == patient_key[0]));
    let audit = read_audit(&out);
    assert_eq!(audit["records_without_patient_record"], 1, "{audit}");
    let dropped = audit["records_dropped"].to_string();
    assert!(dropped.contains("duplicate Patient"), "{dropped}");
}

#[test]
fn a_folder_named_after_the_patient_stays_out_of_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("exports").join("Quaxworth");
    std::fs::create_dir_all(&input).unwrap();
    write_lines(
        &input.join("Patient.000.ndjson"),
        &[patient("p-3", "Quaxworth", "Fenella")],
    );
    let out = dir.path().join("out");
    ok(&deid(&[&input], &out, KEY_A, &[]));
    let manifest = std::fs::read_to_string(out.join("manifest.json")).unwrap();
    assert!(!manifest.contains("Quaxworth"), "{manifest}");
    // The rest of the path stays, so the file can still be found.
    assert!(manifest.contains("exports"), "{manifest}");
    assert!(manifest.contains("Patient.000.ndjson"), "{manifest}");
}

#[test]
fn sigterm_during_deid_removes_the_work_folder_and_the_next_run_sweeps_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let traces = dir.path().join("many.jsonl");
    let line = json!({"patient_id": "p", "messages": [
        {"role": "user", "content": "Seen by Dr. Quaxworth on 3/4/2020 at 617-555-0199. ".repeat(40)}]});
    let mut text = String::new();
    for i in 0..6000 {
        text.push_str(&line.to_string().replace("\"p\"", &format!("\"p{i}\"")));
        text.push('\n');
    }
    std::fs::write(&traces, text).unwrap();
    let out = dir.path().join("out");
    let mut child = clintune_command(&[
        "deid",
        "--input",
        traces.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--as-of",
        "2026-01-01",
    ])
    .env("CLINTUNE_DEID_KEY", KEY_A)
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let staging = || entries_with_prefix(dir.path(), ".out.tmp-");
    let started = std::time::Instant::now();
    while staging().is_empty() && started.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(!staging().is_empty(), "the run never started staging");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(!status.success(), "the run finished before the signal");
    assert!(
        staging().is_empty(),
        "raw records left on disk: {:?}",
        staging()
    );
    assert!(!out.exists());

    // What a kill -9 leaves (a dead process's folder) goes with the next run.
    let leftover = dir.path().join(format!(".out.tmp-{}-1", u32::MAX - 1));
    std::fs::create_dir(&leftover).unwrap();
    std::fs::write(leftover.join("part-00000.tsv"), "raw").unwrap();
    let small = dir.path().join("small.jsonl");
    write_lines(&small, &[line]);
    let o = deid(&[&small], &out, KEY_A, &[]);
    ok(&o);
    assert!(!leftover.exists());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("killed before it could clean up"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The committed synthetic scribe transcripts (lower-case speech with planted
/// PHI), scored by `deid eval`: a guard against regressions on speech, not a
/// figure to report (the rules were developed on this set).
#[test]
fn transcript_recall_does_not_regress() {
    let set = repo().join("tests/fixtures/deid-transcripts");
    for (mode, floor) in [("balanced", 0.97), ("strict", 0.99)] {
        let o = clintune(
            &[
                "deid",
                "eval",
                "--format",
                "brat",
                "--mode",
                mode,
                set.to_str().unwrap(),
            ],
            None,
        );
        ok(&o);
        let stdout = String::from_utf8_lossy(&o.stdout);
        let recall: f64 = stdout
            .lines()
            .find_map(|l| l.strip_prefix("recall"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no recall in {stdout}"));
        assert!(
            recall >= floor,
            "{mode}: recall {recall} < {floor}\n{stdout}"
        );
    }
}

/// An Observation of patient `p-5` with `code` and `valueQuantity` as given.
fn observation(id: &str, code: Value, quantity: Value) -> Value {
    json!({"resourceType": "Observation", "id": id, "status": "final",
        "subject": {"reference": "Patient/p-5"}, "effectiveDateTime": "2020-01-02T10:00:00Z",
        "code": code, "valueQuantity": quantity})
}

/// The kept `fields` of the one row of type `rt` whose `code` (or
/// `medicationCodeableConcept`) has a coding with `code`.
fn row_with_code(out: &Path, rt: &str, code: &str) -> Value {
    let rows = read_rows(out);
    let found: Vec<Value> = rows
        .iter()
        .filter(|r| r.resource_type == rt)
        .map(|r| r.fields.clone())
        .filter(|f| {
            let concept = f.get("code").or_else(|| f.get("medicationCodeableConcept"));
            concept
                .and_then(|c| c["coding"].as_array())
                .is_some_and(|cs| cs.iter().any(|c| c["code"] == code))
        })
        .collect();
    assert_eq!(found.len(), 1, "{rt} with {code}: {found:?}");
    found[0].clone()
}

#[test]
fn identifiers_planted_in_coded_fields_are_dropped_and_counted_and_real_codes_survive() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bulk");
    std::fs::create_dir(&input).unwrap();
    write_lines(
        &input.join("Patient.000.ndjson"),
        &[patient("p-5", "Quaxworth", "Fenella")],
    );
    let heart_rate =
        json!({"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"});
    let per_minute = json!({"value": 72, "unit": "/min",
        "system": "http://unitsofmeasure.org", "code": "/min"});
    let planted_codings = json!({"coding": [
        // An MRN in the system URL, with a real code.
        {"system": "http://hospital.example.org/patients/mrn/00482913", "code": "8867-4"},
        // An SSN as a code of a real system.
        {"system": "http://loinc.org", "code": "123-45-6789"},
        // A name as the version of a real coding.
        {"system": "http://snomed.info/sct", "code": "44054006", "version": "Blenkinsop"},
        // The patient's name as the display of a real coding: the coding stays, the name goes.
        {"system": "http://loinc.org", "code": "2708-6", "display": "Quaxworth"},
    ]});
    let planted_quantity = json!({"value": 5, "unit": "Hortensia",
        "system": "http://unitsofmeasure.org", "code": "617-555-0199"});
    let mut bad_status = observation("o-3", json!({"text": "pulse"}), json!({"value": 1}));
    bad_status["status"] = json!("Blenkinsop");
    write_lines(
        &input.join("Observation.000.ndjson"),
        &[
            observation(
                "o-1",
                json!({"coding": [heart_rate.clone()]}),
                per_minute.clone(),
            ),
            observation("o-2", planted_codings, planted_quantity),
            bad_status,
        ],
    );
    let diabetes = json!({"system": "http://snomed.info/sct", "code": "44054006",
        "display": "Diabetes mellitus type 2"});
    let icd = json!({"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9",
        "display": "Type 2 diabetes mellitus without complications"});
    let condition = |id: &str, coding: &Value| {
        json!({"resourceType": "Condition", "id": id, "subject": {"reference": "Patient/p-5"},
            "onsetDateTime": "2019-01-02", "code": {"coding": [coding]}})
    };
    write_lines(
        &input.join("Condition.000.ndjson"),
        &[condition("c-1", &diabetes), condition("c-2", &icd)],
    );
    let metformin = json!({"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
        "code": "860975", "display": "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet"});
    write_lines(
        &input.join("MedicationRequest.000.ndjson"),
        &[
            json!({"resourceType": "MedicationRequest", "id": "m-1", "status": "active",
            "intent": "order", "subject": {"reference": "Patient/p-5"},
            "authoredOn": "2020-01-02", "medicationCodeableConcept": {"coding": [metformin]}}),
        ],
    );
    let out = dir.path().join("out");
    ok(&deid(&[&input], &out, KEY_A, &[]));

    assert_gone(
        &all_output(&out),
        &[
            "00482913",
            "hospital.example.org",
            "123-45-6789",
            "Blenkinsop",
            "Hortensia",
            "555-0199",
            "Quaxworth",
        ],
    );
    let audit = read_audit(&out);
    let dropped = &audit["fields_dropped"];
    for (reason, n) in [
        ("Observation.code.coding.not_in_terminology", 1),
        ("Observation.code.coding.invalid_code", 1),
        ("Observation.code.coding.invalid_version", 1),
        ("Observation.valueQuantity.unit.invalid_unit", 1),
        ("Observation.valueQuantity.code.invalid_code", 1),
        ("Observation.status.invalid_code", 1),
    ] {
        assert_eq!(dropped[reason], n, "{reason}: {dropped}");
    }

    // Real codings come out as they went in.
    let o1 = row_with_code(&out, "Observation", "8867-4");
    assert_eq!(o1["code"]["coding"], json!([heart_rate]));
    assert_eq!(o1["valueQuantity"], per_minute);
    let c1 = row_with_code(&out, "Condition", "44054006");
    assert_eq!(c1["code"]["coding"], json!([diabetes]));
    let c2 = row_with_code(&out, "Condition", "E11.9");
    assert_eq!(c2["code"]["coding"], json!([icd]));
    let m1 = row_with_code(&out, "MedicationRequest", "860975");
    assert_eq!(
        m1["medicationCodeableConcept"]["coding"],
        json!([metformin])
    );
    // Of the planted ones, only the real code with a scrubbed display is
    // left, and the quantity keeps its number and its valid system.
    let o2 = row_with_code(&out, "Observation", "2708-6");
    let codings = o2["code"]["coding"].as_array().unwrap();
    assert_eq!(codings.len(), 1, "{o2}");
    assert_eq!(codings[0]["system"], "http://loinc.org");
    assert_ne!(codings[0]["display"], "Quaxworth");
    assert_eq!(
        o2["valueQuantity"],
        json!({"value": 5, "system": "http://unitsofmeasure.org"})
    );
}

#[test]
fn input_keys_and_resource_types_never_reach_the_audit() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bulk");
    std::fs::create_dir(&input).unwrap();
    write_lines(
        &input.join("Patient.000.ndjson"),
        &[patient("p-7", "Smythe", "Ottoline")],
    );
    // The same unknown key on two Conditions, at the top, inside a coded
    // structure, a Reference and a Period.
    let condition = |id: &str| {
        json!({"resourceType": "Condition", "id": id, "subject": {"reference": "Patient/p-7"},
            "Quaxworth": "x",
            "code": {"text": "asthma", "Quaxworth": 1},
            "encounter": {"reference": "Encounter/e-1", "Quaxworth": "x"},
            "onsetDateTime": "2019-01-02"})
    };
    write_lines(
        &input.join("Condition.000.ndjson"),
        &[condition("c-1"), condition("c-2")],
    );
    write_lines(
        &input.join("Misc.000.ndjson"),
        &[
            json!({"resourceType": "Zorblatt", "id": "z-1", "subject": {"reference": "Patient/p-7"}}),
        ],
    );
    let traces = dir.path().join("chat.jsonl");
    write_lines(
        &traces,
        &[
            json!({"patient_id": "t1", "HortensiaBlenkinsop": "x", "messages": [
            {"role": "user", "content": "How is my asthma?", "Quaxworth": true},
            {"role": "assistant", "content": "Better."}]}),
        ],
    );
    let out = dir.path().join("out");
    ok(&deid(&[&input, &traces], &out, KEY_A, &[]));
    let text = std::fs::read_to_string(out.join("audit.json")).unwrap();
    for planted in ["Quaxworth", "Zorblatt", "HortensiaBlenkinsop", "Hortensia"] {
        assert!(
            !text.to_lowercase().contains(&planted.to_lowercase()),
            "{planted} in audit.json: {text}"
        );
    }
    let manifest = std::fs::read_to_string(out.join("manifest.json")).unwrap();
    assert!(!manifest.contains("Quaxworth") && !manifest.contains("Zorblatt"));

    // Still counted: under fixed buckets, one keyed hash per distinct key.
    let audit = read_audit(&out);
    let dropped = audit["fields_dropped"].as_object().unwrap();
    let buckets = |prefix: &str| -> Vec<u64> {
        dropped
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, n)| n.as_u64().unwrap())
            .collect()
    };
    assert_eq!(buckets("Condition.<unknown-field:"), [2], "{dropped:?}");
    assert_eq!(
        buckets("Condition.code.<unknown-field:"),
        [2],
        "{dropped:?}"
    );
    assert_eq!(
        buckets("Condition.encounter.<unknown-field:"),
        [2],
        "{dropped:?}"
    );
    assert_eq!(buckets("ChatTrace.<unknown-field:"), [1], "{dropped:?}");
    assert_eq!(
        buckets("ChatTrace.messages.<unknown-field:"),
        [1],
        "{dropped:?}"
    );
    // The same key gets the same hash wherever it is.
    let tag = |prefix: &str| {
        dropped
            .keys()
            .find_map(|k| k.strip_prefix(prefix).map(String::from))
            .unwrap()
    };
    assert_eq!(
        tag("Condition.<unknown-field:"),
        tag("ChatTrace.messages.<unknown-field:")
    );
    assert_ne!(
        tag("Condition.<unknown-field:"),
        tag("ChatTrace.<unknown-field:")
    );
    let unknown_type = "<unknown-resource-type>";
    assert_eq!(audit["records_in"][unknown_type], 1, "{audit}");
    assert_eq!(
        audit["records_dropped"]["resource type not in policy"][unknown_type],
        1
    );
    // Schema names are still named.
    assert_eq!(dropped["Patient.name"], 1);
    assert_eq!(dropped["Patient.telecom"], 1);
    assert_eq!(dropped["ChatTrace.patient_id"], 1);
}
