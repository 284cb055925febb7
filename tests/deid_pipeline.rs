//! End-to-end behaviour of `clintune deid`: consistency, keys, bad input,
//! atomic output, and lineage verification.

mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// (year, month, day) of an ISO timestamp.
fn chrono_like(ts: &str) -> (i64, i64, i64) {
    (
        ts[..4].parse().unwrap(),
        ts[5..7].parse().unwrap(),
        ts[8..10].parse().unwrap(),
    )
}

fn julian(ts: &str) -> i64 {
    // Days since 0000-03-01 (proleptic Gregorian), exact.
    let (y, m, d) = chrono_like(ts);
    let (y, m) = if m <= 2 { (y - 1, m + 12) } else { (y, m) };
    365 * y + y / 4 - y / 100 + y / 400 + (153 * (m - 3) + 2) / 5 + d
}

#[test]
fn intervals_between_a_patients_events_survive_the_shift() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("deid");
    ok(&deid(&[&sample().join("bulk")], &out, KEY_A, &[]));
    let rows = read_rows(&out);

    // Original encounter start dates per patient, from the input.
    let raw = std::fs::read_to_string(sample().join("bulk/Encounter.000.ndjson")).unwrap();
    let mut original: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in raw.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let pid = v["subject"]["reference"]
            .as_str()
            .unwrap()
            .trim_start_matches("Patient/")
            .to_string();
        original
            .entry(pid)
            .or_default()
            .push(v["period"]["start"].as_str().unwrap().to_string());
    }
    let mut shifted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.resource_type == "Encounter") {
        shifted
            .entry(r.patient_key.clone())
            .or_default()
            .push(r.timestamp.clone().unwrap());
    }
    assert_eq!(original.len(), 3);
    assert_eq!(shifted.len(), 3);
    // Match patients by event count and compare the sorted interval sequences.
    let intervals = |v: &Vec<String>| -> Vec<i64> {
        let mut d: Vec<i64> = v.iter().map(|t| julian(t)).collect();
        d.sort();
        d.windows(2).map(|w| w[1] - w[0]).collect()
    };
    let orig: BTreeSet<Vec<i64>> = original.values().map(intervals).collect();
    let shift: BTreeSet<Vec<i64>> = shifted.values().map(intervals).collect();
    assert_eq!(orig, shift, "intervals changed");
    // And the dates themselves did move.
    let all_orig: BTreeSet<&String> = original.values().flatten().collect();
    assert!(shifted.values().flatten().all(|t| !all_orig.contains(t)));
}

#[test]
fn same_key_same_output_different_key_unlinkable() {
    let dir = tempfile::tempdir().unwrap();
    let (a1, a2, b) = (
        dir.path().join("a1"),
        dir.path().join("a2"),
        dir.path().join("b"),
    );
    ok(&deid(&[&sample()], &a1, KEY_A, &[]));
    ok(&deid(&[&sample()], &a2, KEY_A, &[]));
    ok(&deid(&[&sample()], &b, KEY_B, &[]));
    let m = |d: &Path| {
        serde_json::from_str::<serde_json::Value>(
            &std::fs::read_to_string(d.join("manifest.json")).unwrap(),
        )
        .unwrap()
    };
    // Same key: byte-identical records, same manifest id.
    assert_eq!(m(&a1)["id"], m(&a2)["id"]);
    let part = |d: &Path| std::fs::read(d.join("records/part-00000.parquet")).unwrap();
    assert_eq!(part(&a1), part(&a2));
    // Different key: no pseudonym in common.
    let keys = |d: &Path| -> BTreeSet<String> {
        read_rows(d)
            .into_iter()
            .flat_map(|r| [r.patient_key, r.record_key])
            .collect()
    };
    let (ka, kb) = (keys(&a1), keys(&b));
    assert!(ka.len() > 100);
    assert!(ka.is_disjoint(&kb));
    assert_ne!(m(&a1)["config"]["key_id"], m(&b)["config"]["key_id"]);
}

#[test]
fn patient_over_89_loses_birth_date_and_ages_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("deid");
    ok(&deid(&[&sample().join("bulk")], &out, KEY_A, &[]));
    let rows = read_rows(&out);
    let patients: Vec<_> = rows
        .iter()
        .filter(|r| r.resource_type == "Patient")
        .collect();
    let capped: Vec<_> = patients
        .iter()
        .filter(|r| r.fields.get("ageGroup").is_some())
        .collect();
    assert_eq!(capped.len(), 1, "the sample has one patient aged 90+");
    assert!(capped[0].fields.get("birthDate").is_none());
    assert!(
        rows.iter()
            .filter_map(|r| r.age_years)
            .all(|a| (0..=90).contains(&a))
    );
    assert!(rows.iter().any(|r| r.age_years == Some(90)));
    // Notes state ages of 90 and more: none survives as a number.
    let texts: String = rows
        .iter()
        .filter(|r| r.patient_key == capped[0].patient_key)
        .filter_map(|r| r.text.clone())
        .collect();
    for age in 90..=99 {
        assert!(
            !texts.contains(&format!(" {age} year")),
            "age {age} left in notes"
        );
    }
    assert!(texts.contains("90+"));
}

#[test]
fn running_without_a_key_explains_how_to_provide_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("deid");
    let r = clintune(
        &[
            "deid",
            "--input",
            &sample().display().to_string(),
            "--out",
            &out.display().to_string(),
        ],
        None,
    );
    assert!(!r.status.success());
    let e = stderr(&r);
    assert!(
        e.contains("--key-file") && e.contains("CLINTUNE_DEID_KEY") && e.contains("keygen"),
        "{e}"
    );
    assert!(!out.exists());
}

/// Writes a small bulk export with one bad line into `dir`, returns it.
fn bulk_with(dir: &Path, file: &str, bad_line: &str) -> std::path::PathBuf {
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::copy(
        sample().join("bulk/Patient.000.ndjson"),
        input.join("Patient.000.ndjson"),
    )
    .unwrap();
    let src = std::fs::read_to_string(sample().join(format!("bulk/{file}"))).unwrap();
    let mut lines: Vec<&str> = src.lines().take(3).collect();
    lines.push(bad_line);
    std::fs::write(input.join(file), lines.join("\n") + "\n").unwrap();
    input
}

fn first_line(file: &str) -> serde_json::Value {
    serde_json::from_str(
        std::fs::read_to_string(sample().join(format!("bulk/{file}")))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap()
}

fn assert_bad_input(input: &Path, out: &Path, file: &str, record: &str, field: &str) {
    let r = deid(&[input], out, KEY_A, &[]);
    assert!(!r.status.success());
    let e = stderr(&r);
    assert!(
        e.contains(file) && e.contains(record) && e.contains(field),
        "error should name {file}, {record}, {field}: {e}"
    );
    assert!(!out.exists(), "a failed run must not create the output");
    assert_eq!(
        std::fs::read_dir(out.parent().unwrap()).unwrap().count(),
        1,
        "no staging directory left behind"
    );
}

#[test]
fn malformed_json_line_is_named_and_skip_invalid_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    let input = bulk_with(
        dir.path(),
        "Condition.000.ndjson",
        r#"{"resourceType": "Condition", "subject": {"reference": "Patient/x"}"#,
    );
    let out = dir.path().join("out");
    assert_bad_input(&input, &out, "Condition.000.ndjson", "line 4", "(record)");

    let (skipped, kept) = skip_invalid_run(&input, &out, "(record): not valid JSON", "Condition");
    assert_eq!((skipped, kept), (1, 3));
}

/// Runs with `--skip-invalid` into `out` (replacing it); returns how many
/// records were skipped for `reason` and how many of `resource_type` were kept.
fn skip_invalid_run(input: &Path, out: &Path, reason: &str, resource_type: &str) -> (u64, usize) {
    ok(&deid(&[input], out, KEY_A, &["--skip-invalid", "--force"]));
    let audit = read_audit(out);
    let skipped = audit["invalid_records_skipped"][reason]
        .as_u64()
        .unwrap_or(0);
    let kept = read_rows(out)
        .into_iter()
        .filter(|r| r.resource_type == resource_type)
        .count();
    (skipped, kept)
}

#[test]
fn wrong_type_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut v = first_line("Condition.000.ndjson");
    v["onsetDateTime"] = serde_json::json!(20190101);
    let input = bulk_with(dir.path(), "Condition.000.ndjson", &v.to_string());
    assert_bad_input(
        &input,
        &dir.path().join("out"),
        "Condition.000.ndjson",
        "line 4",
        "onsetDateTime",
    );
}

#[test]
fn truncated_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let v = first_line("Encounter.000.ndjson").to_string();
    let input = bulk_with(dir.path(), "Encounter.000.ndjson", &v[..v.len() / 2]);
    assert_bad_input(
        &input,
        &dir.path().join("out"),
        "Encounter.000.ndjson",
        "line 4",
        "(record)",
    );
}

#[test]
fn base64_error_is_named_and_skip_invalid_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut v = first_line("DocumentReference.000.ndjson");
    v["content"][0]["attachment"]["data"] = serde_json::json!("not*base64*at*all");
    let input = bulk_with(dir.path(), "DocumentReference.000.ndjson", &v.to_string());
    let out = dir.path().join("out");
    assert_bad_input(
        &input,
        &out,
        "DocumentReference.000.ndjson",
        "line 4",
        "content[0].attachment.data",
    );

    let (skipped, kept) = skip_invalid_run(
        &input,
        &out,
        "content[0].attachment.data: invalid base64",
        "DocumentReference",
    );
    assert_eq!((skipped, kept), (1, 3));
}

#[test]
fn existing_output_is_left_as_it_was_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    ok(&deid(&[&sample().join("bulk")], &out, KEY_A, &[]));
    let before = std::fs::read(out.join("manifest.json")).unwrap();
    let input = bulk_with(dir.path(), "Condition.000.ndjson", "{broken");
    let r = deid(&[&input], &out, KEY_A, &["--force"]);
    assert!(!r.status.success());
    assert_eq!(std::fs::read(out.join("manifest.json")).unwrap(), before);
}

#[test]
fn unknown_resource_types_and_fields_are_dropped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::copy(
        sample().join("bulk/Patient.000.ndjson"),
        input.join("Patient.000.ndjson"),
    )
    .unwrap();
    let pid = first_line("Patient.000.ndjson")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let secret_marker = "ZZSECRETMARKER";
    let lines = [
        serde_json::json!({"resourceType": "FamilyMemberHistory", "id": "f1", "patient": {"reference": format!("Patient/{pid}")}, "name": secret_marker}),
        serde_json::json!({"resourceType": "Condition", "id": "c1", "subject": {"reference": format!("Patient/{pid}")}, "code": {"text": "asthma"}, "onsetDateTime": "2019-01-02", "unknownExtensionField": secret_marker}),
    ];
    std::fs::write(
        input.join("Misc.000.ndjson"),
        lines
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let out = dir.path().join("out");
    ok(&deid(&[&input], &out, KEY_A, &[]));
    let a = read_audit(&out);
    assert_eq!(
        a["records_dropped"]["resource type not in policy"]["FamilyMemberHistory"],
        1
    );
    // An unknown key is counted under a keyed bucket, never by its name.
    let dropped = a["fields_dropped"].as_object().unwrap();
    assert!(
        dropped
            .iter()
            .any(|(k, n)| k.starts_with("Condition.<unknown-field:") && n == 1),
        "{dropped:?}"
    );
    assert!(!a.to_string().contains("unknownExtensionField"), "{a}");
    let rows = read_rows(&out);
    assert!(
        rows.iter()
            .all(|r| !r.fields.to_string().contains(secret_marker))
    );
    assert!(rows.iter().any(|r| r.resource_type == "Condition"));
}

#[test]
fn lineage_verify_names_a_flipped_output_byte() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    ok(&deid(&[&sample()], &out, KEY_A, &[]));
    let verify = clintune(&["lineage", "verify", &out.display().to_string()], None);
    ok(&verify);
    let show = clintune(&["lineage", "show", &out.display().to_string()], None);
    ok(&show);
    assert!(String::from_utf8_lossy(&show.stdout).contains("deid sha256:"));

    let part = out.join("records/part-00000.parquet");
    let mut bytes = std::fs::read(&part).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&part, bytes).unwrap();
    let r = clintune(&["lineage", "verify", &out.display().to_string()], None);
    assert!(!r.status.success());
    let e = stderr(&r);
    assert!(
        e.contains("part-00000.parquet") && e.contains("sha256"),
        "{e}"
    );
}

#[test]
fn manifest_records_inputs_outputs_and_no_patient_named_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let renamed = dir.path().join("named");
    std::fs::create_dir_all(&renamed).unwrap();
    // A Bundle file named after its patient, as exports often are.
    std::fs::copy(
        sample().join("bundles/bundle-001.json"),
        renamed.join("Edward_Gulgowski_43481611.json"),
    )
    .unwrap();
    // A Bulk export in a folder named after a patient.
    let folder = dir.path().join("Elisa_Johnson_export");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(
        sample().join("bulk/Condition.000.ndjson"),
        folder.join("Condition.000.ndjson"),
    )
    .unwrap();
    ok(&deid(
        &[&renamed, &folder, &sample().join("bulk")],
        &out,
        KEY_A,
        &[],
    ));
    let text = std::fs::read_to_string(out.join("manifest.json")).unwrap();
    assert!(
        !text.contains("Gulgowski") && !text.contains("Edward"),
        "a patient-named file name reached the manifest"
    );
    assert!(
        !text.contains("Elisa"),
        "a patient-named folder reached the manifest"
    );
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(m["stage"], "deid");
    assert!(m["id"].as_str().unwrap().starts_with("sha256:"));
    let inputs = m["inputs"].as_array().unwrap();
    assert!(
        inputs
            .iter()
            .any(|i| i["redacted"] == true && i["kind"] == "fhir-bundle")
    );
    assert!(
        inputs
            .iter()
            .any(|i| i["path"].as_str().unwrap().ends_with("Patient.000.ndjson") && i["rows"] == 3)
    );
    let outputs = m["outputs"].as_array().unwrap();
    assert!(outputs.iter().any(|o| o["path"] == "audit.json"));
    let rows: u64 = outputs.iter().filter_map(|o| o["rows"].as_u64()).sum();
    assert_eq!(rows as usize, read_rows(&out).len());
    assert!(m["counts"]["phi_replaced"]["name"].as_u64().unwrap() > 0);
}

#[test]
fn free_text_dates_move_with_the_structured_dates() {
    // Synthea notes open with the encounter date; after de-identification
    // that line must equal the note's shifted `date` (same patient offset).
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("deid");
    ok(&deid(&[&sample().join("bulk")], &out, KEY_A, &[]));
    let notes: Vec<_> = read_rows(&out)
        .into_iter()
        .filter(|r| r.resource_type == "DocumentReference")
        .collect();
    assert!(notes.len() > 100);
    for r in &notes {
        let text = r.text.as_deref().unwrap();
        let first_line = text.trim_start().lines().next().unwrap();
        let shifted_date = &r.fields["date"].as_str().unwrap()[..10];
        assert_eq!(
            first_line, shifted_date,
            "note date and structured date moved differently"
        );
    }
}

#[test]
fn chat_traces_share_the_patient_key_and_shift_of_their_fhir_patient() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("deid");
    ok(&deid(&[&sample()], &out, KEY_A, &[]));
    let rows = read_rows(&out);
    let fhir_patients: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.resource_type == "Patient")
        .map(|r| r.patient_key.as_str())
        .collect();
    let linked: Vec<_> = rows
        .iter()
        .filter(|r| {
            r.resource_type == "ChatTrace" && fhir_patients.contains(r.patient_key.as_str())
        })
        .collect();
    let traces = std::fs::read_to_string(sample().join("chat/traces.jsonl")).unwrap();
    let with_id = traces
        .lines()
        .filter(|l| l.contains("\"patient_id\""))
        .count();
    assert!(with_id >= 10);
    assert_eq!(
        linked.len(),
        with_id,
        "every trace with a patient id joins that patient's timeline"
    );
    let audit = read_audit(&out);
    assert_eq!(audit["patients_with_record"], fhir_patients.len());
    // The patient id field itself is not passed through.
    assert!(
        rows.iter()
            .filter(|r| r.resource_type == "ChatTrace")
            .all(|r| r.fields.get("patient_id").is_none())
    );
}

#[test]
fn many_partitions_give_the_same_records_as_one() {
    use clintune_core::secret::{KeySource, SecretKey};
    let dir = tempfile::tempdir().unwrap();
    let key = SecretKey::from_bytes(KEY_A.as_bytes(), KeySource::Env("TEST".into())).unwrap();
    let run = |name: &str, partition_bytes: u64| {
        let opts = clintune_deid::DeidOptions {
            inputs: vec![sample()],
            policy: Some(repo().join("deid/safe-harbor.toml")),
            out: dir.path().join(name),
            force: false,
            skip_invalid: false,
            as_of: "2026-01-01".parse().unwrap(),
            partition_bytes,
        };
        clintune_deid::run(&opts, &key).unwrap()
    };
    let one = run("one", 256 << 20);
    let many = run("many", 64 << 10);
    let parts = |d: &Path| std::fs::read_dir(d.join("records")).unwrap().count();
    assert_eq!(parts(&one.out), 1);
    assert!(
        parts(&many.out) > 5,
        "expected many partitions, got {}",
        parts(&many.out)
    );
    let rows = |d: &Path| -> BTreeSet<String> {
        read_rows(d)
            .into_iter()
            .map(|r| {
                format!(
                    "{} {} {} {:?} {:?} {} {:?}",
                    r.patient_key,
                    r.resource_type,
                    r.record_key,
                    r.timestamp,
                    r.age_years,
                    r.fields,
                    r.text
                )
            })
            .collect()
    };
    let (a, b) = (rows(&one.out), rows(&many.out));
    assert!(a.len() > 500);
    assert_eq!(a, b);
    assert_eq!(one.audit.to_json(), many.audit.to_json());
}

#[test]
fn lineage_verify_rechecks_source_files_still_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("export");
    std::fs::create_dir_all(&input).unwrap();
    for f in ["Patient.000.ndjson", "Condition.000.ndjson"] {
        std::fs::copy(sample().join("bulk").join(f), input.join(f)).unwrap();
    }
    let out = dir.path().join("out");
    ok(&deid(&[&input], &out, KEY_A, &[]));
    let verify = clintune(&["lineage", "verify", &out.display().to_string()], None);
    ok(&verify);
    assert!(
        String::from_utf8_lossy(&verify.stdout).contains("0 input(s) not on disk"),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    // A source record changed after de-identification: the lineage no longer holds.
    let cond = input.join("Condition.000.ndjson");
    let text = std::fs::read_to_string(&cond)
        .unwrap()
        .replacen("active", "Active", 1);
    std::fs::write(&cond, text).unwrap();
    let r = clintune(&["lineage", "verify", &out.display().to_string()], None);
    assert!(!r.status.success());
    assert!(
        stderr(&r).contains("Condition.000.ndjson"),
        "{}",
        stderr(&r)
    );
}

#[test]
fn the_built_in_policy_works_from_any_folder_and_hashes_as_the_file_does() {
    let tmp = tempfile::tempdir().unwrap();
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let builtin = tmp.path().join("builtin");
    let o = clintune_command(&[
        "deid",
        "--input",
        &s(&sample()),
        "--out",
        &s(&builtin),
        "--as-of",
        "2026-01-01",
    ])
    .current_dir(&elsewhere)
    .env("CLINTUNE_DEID_KEY", KEY_A)
    .output()
    .unwrap();
    ok(&o);
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        said.contains("policy: built-in deid/safe-harbor.toml"),
        "{said}"
    );

    let file = tmp.path().join("file");
    let policy = repo().join("deid/safe-harbor.toml");
    let o = deid(&[&sample()], &file, KEY_A, &["--policy", &s(&policy)]);
    ok(&o);
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        said.contains(&format!("policy: {}", policy.display())),
        "{said}"
    );

    // The same policy and dictionaries: the same configuration and records.
    let (b, f) = (read_manifest(&builtin), read_manifest(&file));
    assert_eq!(b["config_hash"], f["config_hash"]);
    assert_eq!(b["outputs"], f["outputs"]);

    // `scan` finds its policy from any folder too.
    let o = clintune_command(&["scan", &s(&builtin)])
        .current_dir(&elsewhere)
        .output()
        .unwrap();
    ok(&o);
}

#[test]
fn json_nested_past_the_parsers_limit_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(
        input.join("deep.ndjson"),
        format!("{}\n", "[".repeat(100_000)),
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = deid(&[&input], &out, KEY_A, &[]);
    let err = stderr(&o);
    assert!(!o.status.success(), "{err}");
    for want in ["deep.ndjson", "line 1", "nested deeper"] {
        assert!(err.contains(want), "{want}: {err}");
    }
    assert!(!out.exists());
}

#[test]
fn quiet_deid_prints_no_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = clintune_command(&[
        "deid",
        "-q",
        "--input",
        &s(&sample().join("bulk")),
        "--out",
        &s(&out),
    ])
    .env("CLINTUNE_DEID_KEY", KEY_A)
    .output()
    .unwrap();
    ok(&o);
    assert!(
        o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(out.join("manifest.json").is_file());
    // The usage line says what a run needs.
    let help = clintune(&["deid", "--help"], None);
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("Usage: clintune deid --input <PATH>... --out <DIR>"),
        "{help}"
    );
}

/// Identifiers the sample's preference pairs mention (made up).
const SAMPLE_PAIR_PHI: [&str; 6] = [
    "Okafor",
    "Lindqvist",
    "Ferreira",
    "Haddad",
    "555-201-",
    "03/14/2024",
];

#[test]
fn preference_pairs_of_both_formats_are_scrubbed_into_one_layout() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("deid");
    ok(&deid(&[&sample().join("preference")], &out, KEY_A, &[]));
    let rows: Vec<OutRow> = read_rows(&out);
    assert_eq!(rows.len(), 120);
    let raw = std::fs::read_to_string(sample().join("preference/azure-dpo.jsonl")).unwrap()
        + &std::fs::read_to_string(sample().join("preference/trl.jsonl")).unwrap();
    for phi in SAMPLE_PAIR_PHI {
        assert!(raw.contains(phi), "the sample should mention {phi}");
    }
    let mut formats = BTreeSet::new();
    for r in &rows {
        assert_eq!(r.resource_type, "PreferencePair");
        let f = &r.fields;
        formats.insert(f["format"].as_str().unwrap().to_string());
        let text = f.to_string();
        for phi in SAMPLE_PAIR_PHI {
            assert!(!text.contains(phi), "{phi} left in a de-identified pair");
        }
        for part in ["prompt", "chosen", "rejected"] {
            assert!(f[part].as_array().is_some_and(|m| !m.is_empty()), "{part}");
        }
        assert_eq!(f["chosen"][0]["role"], "assistant");
        assert_ne!(f["chosen"], f["rejected"]);
    }
    assert_eq!(
        formats,
        BTreeSet::from(["azure-dpo".to_string(), "trl-conversational".to_string()])
    );
}

/// A preference file with the given lines, alone in `dir/in/`.
fn pairs_file(dir: &Path, lines: &[serde_json::Value]) -> PathBuf {
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    std::fs::write(input.join("pairs.jsonl"), text.join("\n") + "\n").unwrap();
    input
}

#[test]
fn bad_preference_pairs_are_named_and_skip_invalid_counts_them() {
    use serde_json::json;
    let azure = json!({
        "input": {"messages": [{"role": "user", "content": "BP 90/60, dizzy. Dose?"}]},
        "preferred_output": [{"role": "assistant", "content": "Hold it; recheck lying and standing."}],
        "non_preferred_output": [{"role": "assistant", "content": "Give it."}]
    });
    let trl = json!({
        "prompt": [{"role": "user", "content": "Dizzy on metoprolol?"}],
        "chosen": [{"role": "assistant", "content": "What are the vitals?"}],
        "rejected": [{"role": "assistant", "content": "Normal."}]
    });
    let mut same = azure.clone();
    same["non_preferred_output"] = same["preferred_output"].clone();
    let mut no_answer = trl.clone();
    no_answer["rejected"] = json!([{"role": "tool", "content": "{}"}]);
    let cases = [
        (vec![azure.clone(), trl.clone()], "line 2", "mixes formats"),
        (vec![azure.clone(), same], "line 2", "non_preferred_output"),
        (vec![trl.clone(), no_answer], "line 2", "rejected"),
    ];
    for (lines, record, field) in cases {
        let dir = tempfile::tempdir().unwrap();
        let input = pairs_file(dir.path(), &lines);
        let out = dir.path().join("out");
        assert_bad_input(&input, &out, "pairs.jsonl", record, field);
        ok(&deid(&[&input], &out, KEY_A, &["--skip-invalid"]));
        let audit = read_audit(&out);
        let skipped: u64 = audit["invalid_records_skipped"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(skipped, 1, "{field}: {audit}");
        assert_eq!(read_rows(&out).len(), 1);
    }
}
