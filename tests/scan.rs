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

/// A model card in `folder/v1` that names the export `name`, as the
/// generated card does, with `extra` after it. Returns the findings of its
/// scan.
fn card_findings(folder: &std::path::Path, name: &str, extra: &str) -> Vec<Value> {
    let export = folder.join("v1");
    std::fs::create_dir_all(&export).unwrap();
    let card = format!(
        "# {name} v1\n\nA fine-tuned model.\n\n```python\nmodel = \
         AutoModelForCausalLM.from_pretrained(\"{name}/v1\")\n```\n{extra}"
    );
    std::fs::write(export.join("README.md"), card).unwrap();
    let o = clintune(&["scan", "--json", &s(&export)], None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn an_exports_own_name_in_its_card_is_no_finding_a_planted_name_still_is() {
    let tmp = tempfile::tempdir().unwrap();
    // The model alone takes the off-list word in the code line for PHI...
    let elsewhere = card_findings(&tmp.path().join("other"), "quickstart", "");
    assert!(
        elsewhere.iter().any(|f| f["masked"] == "q… (10 chars)"),
        "{elsewhere:?}"
    );
    // ...but not when it is the name of the export being scanned.
    let own = card_findings(&tmp.path().join("b/quickstart"), "quickstart", "");
    assert!(own.is_empty(), "{own:?}");
    let planted = card_findings(
        &tmp.path().join("c/quickstart"),
        "quickstart",
        "\nQuestions: Dr. Quaxworth, 410-555-0147.\n",
    );
    let categories: Vec<&str> = planted
        .iter()
        .map(|f| f["category"].as_str().unwrap())
        .collect();
    assert!(categories.contains(&"phone"), "{planted:?}");
    assert!(
        planted.iter().any(|f| f["masked"] == "Q… (9 chars)"),
        "{planted:?}"
    );
}
