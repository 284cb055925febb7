//! `clintune release` end to end: an export trained on canaries, its
//! evaluation and memorization audit; refusals that name every failure and
//! write nothing; an approval that verifies, and a changed byte in it that
//! `lineage verify` names.

mod common;

use common::*;
use std::path::{Path, PathBuf};

const MODEL: &str = "tests/fixtures/llama/llama-gqa-rope3";

struct Setup {
    export: PathBuf,
    eval: PathBuf,
    audit: PathBuf,
}

/// The sample's chat traces with two canaries, a short full fine-tune of
/// the fixture on them, exported, evaluated against the fixture, audited.
fn setup(tmp: &Path) -> Setup {
    let data = curated_with_canaries(tmp, MODEL);
    let export = trained_and_exported(tmp, MODEL, &data, "site");
    let eval = tmp.join("eval");
    ok(&clintune(
        &[
            "eval",
            "--model",
            &s(&export),
            "--dataset",
            &s(&data),
            "--baseline",
            MODEL,
            "--out",
            &s(&eval),
            "--no-generate",
        ],
        None,
    ));
    let audit = tmp.join("audit");
    ok(&clintune(
        &[
            "audit",
            "memorization",
            "--model",
            &s(&export),
            "--dataset",
            &s(&data),
            "--out",
            &s(&audit),
            "--candidates",
            "300",
            "--extraction-examples",
            "2",
        ],
        None,
    ));
    Setup {
        export,
        eval,
        audit,
    }
}

fn release(set: &Setup, export: &Path, policy: &Path, out: &Path) -> std::process::Output {
    clintune(
        &[
            "release",
            &s(export),
            "--reviewer",
            "A. Reviewer",
            "--note",
            "pilot",
            "--policy",
            &s(policy),
            "--eval",
            &s(&set.eval),
            "--audit",
            &s(&set.audit),
            "--out",
            &s(out),
        ],
        None,
    )
}

fn refused(o: &std::process::Output, out: &Path, expected: &[&str]) {
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("release refused, nothing written"), "{err}");
    for e in expected {
        assert!(err.contains(e), "expected {e:?} in:\n{err}");
    }
    assert!(!out.exists(), "a refusal writes nothing");
}

#[test]
fn release_refuses_each_failure_and_records_an_approval_that_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let set = setup(tmp.path());
    let policy = |name: &str, text: &str| {
        let path = tmp.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    // The default policy: the canary planted 48 times is memorized.
    let default = policy(
        "default.toml",
        &std::fs::read_to_string(repo().join("recipes/release.toml")).unwrap(),
    );
    let out = tmp.path().join("approval");
    refused(
        &release(&set, &set.export, &default, &out),
        &out,
        &["memorization:", "canary-01 (planted 48) has exposure"],
    );

    // Lenient on memorization, strict on loss: the eval threshold fails.
    let strict = policy(
        "strict.toml",
        "[memorization]\nmax_exposure_bits = 20.0\nmax_extraction_gap = 1.0\n[eval]\nmax_loss_increase = -100.0\n",
    );
    refused(
        &release(&set, &set.export, &strict, &out),
        &out,
        &["eval:", "chat: loss -"],
    );

    // A phone number planted in a copy of the export: the scan names it, and
    // the lineage no longer verifies.
    let lenient = policy(
        "lenient.toml",
        "[memorization]\nmax_exposure_bits = 20.0\nmax_extraction_gap = 1.0\n",
    );
    let planted = tmp.path().join("planted");
    copy_dir(&set.export, &planted);
    let card = planted.join("README.md");
    let text = std::fs::read_to_string(&card).unwrap() + "\nQuestions: call 410-555-0147.\n";
    std::fs::write(&card, text).unwrap();
    refused(
        &release(&set, &planted, &lenient, &out),
        &out,
        &[
            "scan: forbidden findings: README.md",
            "phone",
            "lineage: does not verify",
        ],
    );

    // All checks pass: the approval is written and verifies.
    let o = release(&set, &set.export, &lenient, &out);
    ok(&o);
    let stdout = String::from_utf8_lossy(&o.stdout);
    for check in ["lineage", "scan", "eval", "memorization"] {
        assert!(stdout.contains(&format!("passed  {check}")), "{stdout}");
    }
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("release.json")).unwrap()).unwrap();
    assert_eq!(record["decision"], "approved");
    assert_eq!(record["decided"]["reviewer"], "A. Reviewer");
    assert_eq!(record["export"]["id"], read_manifest(&set.export)["id"]);
    let evidence = record["checks"][2]["evidence"][0]["sha256"]
        .as_str()
        .unwrap();
    assert!(evidence.starts_with("sha256:"), "{evidence}");
    let manifest = read_manifest(&out);
    assert_eq!(manifest["stage"], "release");
    assert_eq!(manifest["parents"].as_array().unwrap().len(), 3);
    ok(&clintune(&["lineage", "verify", &s(&out)], None));

    report_holds_every_section(&set, &out, tmp.path());

    // An approval is never overwritten.
    let again = release(&set, &set.export, &lenient, &out);
    assert!(!again.status.success());

    // A changed byte in the record is named.
    let path = out.join("release.json");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("A. Reviewer", "B. Reviewer");
    std::fs::write(&path, text).unwrap();
    let o = clintune(&["lineage", "verify", &s(&out)], None);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("release.json"));
}

/// The governance page: every section, nothing fetched, and it renders in
/// a real browser where one is installed.
fn report_holds_every_section(set: &Setup, approval: &Path, tmp: &Path) {
    let page = tmp.join("report.html");
    ok(&clintune(
        &[
            "report",
            &s(&set.export),
            "--release",
            &s(approval),
            "--out",
            &s(&page),
        ],
        None,
    ));
    let html = std::fs::read_to_string(&page).unwrap();
    for section in [
        "Release status",
        "Approved by A. Reviewer",
        "Lineage",
        "De-identification",
        "Dataset",
        "Training",
        "Evaluation",
        "Memorization audit",
        "canary-01",
        "PHI scan of the export",
    ] {
        assert!(html.contains(section), "missing {section}");
    }
    for stage in ["deid", "curate", "train", "export", "release"] {
        assert!(
            html.contains(&format!(">{stage}</text>")),
            "chain box {stage}"
        );
    }
    assert!(html.contains("<polyline"), "loss curve");
    for external in ["http:", "https:", "src=", "<link", "@import"] {
        assert!(
            !html.contains(external),
            "the page fetches nothing: {external}"
        );
    }
    let Some(browser) = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
    else {
        eprintln!("skipped: no Chromium here to render the report");
        return;
    };
    let shot = tmp.join("report.png");
    let o = std::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1100,3000",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
}
