//! Leak test: no structured identifier of any sample patient survives
//! de-identification, in any output byte (decoded Parquet, manifest, audit
//! report) or in the logs.

mod common;

use common::*;
use serde_json::Value;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Every structured identifier of a patient, in the written forms searched for.
fn identifiers(p: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    for name in p["name"].as_array().into_iter().flatten() {
        let mut parts = strs(&name["given"]);
        parts.extend(name["family"].as_str().map(String::from));
        for part in &parts {
            out.push(part.clone());
            let bare = part.trim_end_matches(|c: char| c.is_ascii_digit());
            if bare.len() >= 3 {
                out.push(bare.to_string());
            }
        }
        out.push(parts.join(" "));
    }
    for ext in p["extension"].as_array().into_iter().flatten() {
        if let Some(s) = ext["valueString"].as_str().filter(|_| {
            ext["url"]
                .as_str()
                .unwrap_or("")
                .ends_with("mothersMaidenName")
        }) {
            out.extend(s.split_whitespace().map(String::from));
        }
        if let Some(city) = ext["valueAddress"]["city"].as_str() {
            out.push(city.to_string());
        }
    }
    for a in p["address"].as_array().into_iter().flatten() {
        out.extend(strs(&a["line"]));
        out.extend(a["city"].as_str().map(String::from));
        out.extend(
            a["postalCode"]
                .as_str()
                .filter(|z| z.len() >= 5)
                .map(String::from),
        );
    }
    for t in p["telecom"].as_array().into_iter().flatten() {
        let v = t["value"].as_str().unwrap_or_default();
        let d: String = v.chars().filter(char::is_ascii_digit).collect();
        out.push(v.to_string());
        if d.len() == 10 {
            out.push(d.clone());
            out.push(format!("({}) {}-{}", &d[..3], &d[3..6], &d[6..]));
            out.push(format!("{}.{}.{}", &d[..3], &d[3..6], &d[6..]));
            out.push(format!("{} {} {}", &d[..3], &d[3..6], &d[6..]));
        }
    }
    for id in p["identifier"].as_array().into_iter().flatten() {
        let v = id["value"].as_str().unwrap_or_default();
        out.push(v.to_string());
        let compact: String = v.chars().filter(char::is_ascii_alphanumeric).collect();
        out.push(compact);
        out.push(v.replace('-', " "));
    }
    if let Some(b) = p["birthDate"].as_str() {
        let (y, m, d): (u32, usize, u32) = (
            b[..4].parse().unwrap(),
            b[5..7].parse().unwrap(),
            b[8..10].parse().unwrap(),
        );
        out.push(b.to_string());
        out.push(format!("{m:02}/{d:02}/{y}"));
        out.push(format!("{m}/{d}/{y}"));
        out.push(format!("{m}-{d}-{y}"));
        out.push(format!("{} {d}, {y}", MONTHS[m - 1]));
        out.push(format!("{d} {} {y}", MONTHS[m - 1]));
    }
    out.retain(|s| s.trim().len() >= 3);
    out.sort();
    out.dedup();
    out
}

/// Case-insensitive whole-word search.
fn contains_word(haystack: &str, needle: &str) -> bool {
    let h = haystack.to_lowercase();
    let n = needle.to_lowercase();
    let hb = h.as_bytes();
    let mut from = 0;
    while let Some(pos) = h[from..].find(&n) {
        let s = from + pos;
        let e = s + n.len();
        let word = |b: u8| b.is_ascii_alphanumeric();
        if (s == 0 || !word(hb[s - 1])) && (e >= hb.len() || !word(hb[e])) {
            return true;
        }
        from = s + 1;
    }
    false
}

#[test]
fn no_structured_identifier_reaches_any_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("deid");
    let run = deid(&[&sample()], &out, KEY_A, &[]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let mut corpus = String::new();
    for row in read_rows(&out) {
        corpus.push_str(&format!(
            "{} {} {} {:?} {} {}\n",
            row.patient_key,
            row.resource_type,
            row.record_key,
            row.timestamp,
            row.fields,
            row.text.unwrap_or_default()
        ));
    }
    assert!(corpus.len() > 100_000, "output unexpectedly small");
    corpus.push_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap());
    corpus.push_str(&std::fs::read_to_string(out.join("audit.json")).unwrap());
    corpus.push_str(&String::from_utf8_lossy(&run.stdout));
    corpus.push_str(&String::from_utf8_lossy(&run.stderr));

    let patients = sample_patients();
    assert_eq!(patients.len(), 5);
    let mut searched = 0;
    let mut leaks = Vec::new();
    for p in &patients {
        for ident in identifiers(p) {
            searched += 1;
            if contains_word(&corpus, &ident) {
                leaks.push(ident);
            }
        }
    }
    assert!(searched > 100, "only {searched} identifiers searched");
    assert!(
        leaks.is_empty(),
        // Synthetic sample data: naming the identifiers is safe and helps.
        "identifiers found in output: {leaks:?} ({} of {searched})",
        leaks.len()
    );
    assert!(!corpus.contains(KEY_A), "the key reached an output");

    // The sample's notes and chats really mention these patients, so the
    // check above is not vacuous.
    let raw_notes = std::fs::read_to_string(sample().join("chat/traces.jsonl")).unwrap();
    assert!(
        patients
            .iter()
            .any(|p| identifiers(p).iter().any(|i| contains_word(&raw_notes, i)))
    );
}

#[test]
fn nothing_but_the_outputs_is_left_in_the_output_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("deid");
    assert!(deid(&[&sample()], &out, KEY_A, &[]).status.success());
    let mut names: Vec<String> = walk(&out)
        .iter()
        .map(|p| p.strip_prefix(&out).unwrap().display().to_string())
        .collect();
    names.sort();
    assert!(
        names.iter().all(|n| n == "manifest.json"
            || n == "audit.json"
            || (n.starts_with("records/part-") && n.ends_with(".parquet"))),
        "{names:?}"
    );
    // Nothing beside the output either (no staging directory left behind).
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
