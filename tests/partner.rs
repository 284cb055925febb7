//! The partner story: a partner tunes an institution's released export on
//! its own data. The partner's export keeps both branches of its lineage
//! (its own data, and the institution's whole chain through the base), and
//! verifies alone once copied to a machine without the institution's files.

mod common;

use common::*;
use std::path::{Path, PathBuf};

const MODEL: &str = "tests/fixtures/llama/llama-gqa-rope3";

/// Trains `base` on `dataset` for two steps (`method`) and exports it as
/// `root/name/v1`.
fn train_and_export(tmp: &Path, name: &str, base: &str, dataset: &Path, method: &str) -> PathBuf {
    let run = tmp.join(format!("run-{name}"));
    let recipe = tmp.join(format!("{name}.toml"));
    let text = format!(
        "[model]\nbase = \"{base}\"\n[data]\ndataset = \"{}\"\nseq_len = 128\nmicro_batch = 2\n\
         grad_accum = 1\n[method]\nkind = \"{method}\"\n[train]\nmax_steps = 2\n\
         checkpoint_every = 2\neval_every = 2\noutput = \"{}\"\n",
        s(dataset),
        s(&run)
    );
    std::fs::write(&recipe, text).unwrap();
    ok(&clintune(&["train", "-q", &s(&recipe)], None));
    let root = tmp.join("exports");
    ok(&clintune(
        &["export", &s(&run), "--name", name, "--root", &s(&root)],
        None,
    ));
    root.join(name).join("v1")
}

#[test]
fn a_partner_export_shows_both_branches_and_verifies_alone_elsewhere() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = curated_sample(tmp.path(), MODEL);
    let institution = train_and_export(tmp.path(), "institution", MODEL, &dataset, "full");
    let partner = train_and_export(tmp.path(), "partner", &s(&institution), &dataset, "lora");

    let institution_id = read_manifest(&institution)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let o = clintune(&["lineage", "show", &s(&partner)], None);
    ok(&o);
    let shown = String::from_utf8_lossy(&o.stdout);
    assert!(
        shown.contains(&institution_id),
        "the base export is a parent:\n{shown}"
    );
    assert_eq!(shown.matches("export sha256:").count(), 2, "{shown}");
    let o = clintune(&["lineage", "verify", &s(&partner)], None);
    ok(&o);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("not available here"));

    // Copied alone to another machine: its own files verify, the parents
    // that stayed behind are named by id.
    let elsewhere = tmp.path().join("elsewhere/partner-v1");
    copy_dir(&partner, &elsewhere);
    let o = clintune(&["lineage", "verify", &s(&elsewhere)], None);
    ok(&o);
    let said = String::from_utf8_lossy(&o.stdout);
    let run_id = read_manifest(&partner)["parents"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        said.contains("not available here") && said.contains(&run_id),
        "{said}"
    );
    let o = clintune(
        &["lineage", "verify", "--require-parents", &s(&elsewhere)],
        None,
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains(&run_id));

    // A byte changed in the copy is still caught.
    let card = elsewhere.join("README.md");
    let text = std::fs::read_to_string(&card).unwrap() + " ";
    std::fs::write(&card, text).unwrap();
    let o = clintune(&["lineage", "verify", &s(&elsewhere)], None);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("README.md"));
}
