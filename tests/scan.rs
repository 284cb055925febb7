//! `clintune scan` finds PHI planted in an export, names file and place, and
//! never prints the match itself.

mod common;

use common::*;
use serde_json::Value;

#[test]
fn a_planted_phone_number_is_found_and_masked() {
    let tmp = tempfile::tempdir().unwrap();
    let export = repo().join("tests/fixtures/export/tiny-lora");
    let copy = tmp.path().join("export");
    std::fs::create_dir_all(copy.join("adapter")).unwrap();
    for f in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "adapter/adapter_config.json",
    ] {
        std::fs::copy(export.join(f), copy.join(f)).unwrap();
    }
    let scan = |extra: &[&str]| {
        let mut args = vec!["scan", "--json"];
        let dir = s(&copy);
        args.push(&dir);
        args.extend_from_slice(extra);
        clintune(&args, None)
    };
    let findings = |o: &std::process::Output| -> Vec<Value> {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let before = scan(&[]);
    assert!(before.status.success());
    let baseline = findings(&before).len();

    let path = copy.join("config.json");
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    config["note"] = Value::from("call back on 617-555-0199");
    std::fs::write(&path, config.to_string()).unwrap();
    let after = scan(&[]);
    let found = findings(&after);
    assert_eq!(found.len(), baseline + 1, "{found:?}");
    let phone = found.iter().find(|f| f["category"] == "phone").unwrap();
    assert_eq!(phone["file"], "config.json");
    assert_eq!(phone["place"], "$.note");
    assert!(!String::from_utf8_lossy(&after.stdout).contains("555-0199"));
    assert!(!scan(&["--fail-on-findings"]).status.success());
}
