//! `clintune run`: the whole pipeline on the bundled sample from one recipe,
//! ending in an export that verifies down to the source records.

mod common;

use common::*;

/// A pipeline recipe in `dir` on the records in `sample`: a one-layer model,
/// two training steps; `extra` tables appended.
fn pipeline_recipe(
    dir: &std::path::Path,
    sample: &std::path::Path,
    extra: &str,
) -> std::path::PathBuf {
    let t = |name: &str| s(&dir.join(name));
    let text = format!(
        r#"[deid]
input = ["{sample}"]
out = "{deid}"
[curate.tokenizer]
vocab_size = 1024
[model]
base = "{base}"
[model.init]
layers = 1
hidden = 64
heads = 4
kv_heads = 2
max_positions = 256
[data]
dataset = "{data}"
seq_len = 256
micro_batch = 2
[train]
max_steps = 2
eval_batches = 1
output = "{run}"
[export]
name = "pipeline"
root = "{root}"
{extra}"#,
        sample = s(sample),
        deid = t("deid"),
        base = t("base"),
        data = t("curated"),
        run = t("run"),
        root = t("checkpoints"),
    );
    let recipe = dir.join("pipeline.toml");
    std::fs::write(&recipe, text).unwrap();
    recipe
}

#[test]
fn the_pipeline_runs_end_to_end_and_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let t = |name: &str| s(&tmp.path().join(name));
    // A copy of the sample, changed below.
    let sample = tmp.path().join("sample");
    copy_dir(&common::sample(), &sample);
    let recipe = pipeline_recipe(tmp.path(), &sample, "");
    let o = clintune(&["run", &s(&recipe)], Some(KEY_A));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    for stage in ["1/6", "2/6", "3/6", "4/6", "5/6", "6/6"] {
        assert!(err.contains(stage), "{stage} missing:\n{err}");
    }
    let v1 = tmp.path().join("checkpoints/pipeline/v1");
    assert!(v1.join("model.safetensors").is_file());
    assert!(String::from_utf8_lossy(&o.stdout).contains("verified: 4 manifest"));
    let manifest = read_manifest(&v1);
    assert_eq!(manifest["stage"], "export");
    // Record inputs stay out of log lines and of the run's recorded recipe:
    // the de-identification manifest keeps identifying names only pseudonymized.
    assert!(err.contains("--input <input>"), "{err}");
    assert!(!err.contains(&format!("--input {}", t("sample"))), "{err}");
    let run = read_manifest(&tmp.path().join("run"));
    assert!(run["config"]["recipe"].get("deid").is_none());
    assert!(run["config"]["recipe"].get("export").is_some());

    // Run again on the same records: nothing left to train, a new export.
    let o = clintune(&["run", &s(&recipe)], Some(KEY_A));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("nothing to train"), "{err}");
    assert!(tmp.path().join("checkpoints/pipeline/v2").is_dir());
    // Changed records: the tokenizer, the base and the run are made again,
    // the earlier ones kept beside them.
    let traces = sample.join("chat/traces.jsonl");
    let text = std::fs::read_to_string(&traces).unwrap();
    let rest = text.split_once('\n').unwrap().1;
    std::fs::write(&traces, rest).unwrap();
    let o = clintune(&["run", &s(&recipe)], Some(KEY_A));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("curated again"), "{err}");
    assert!(tmp.path().join("run.previous/manifest.json").is_file());
    assert!(tmp.path().join("base.previous/config.json").is_file());
    assert!(tmp.path().join("checkpoints/pipeline/v3").is_dir());
    let run = read_manifest(&tmp.path().join("run"));
    let curated = read_manifest(&tmp.path().join("curated"));
    assert_eq!(run["parents"][0]["id"], curated["id"]);

    // Without a key the pipeline stops at its first stage, saying why.
    let o = clintune(&["run", &s(&recipe)], None);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("1/6"));
}

/// With `[validate]`, the export is evaluated against its base, audited for
/// the canaries curation planted, and described in a report beside it.
#[test]
fn the_pipeline_validates_what_it_exports() {
    let tmp = tempfile::tempdir().unwrap();
    let extra =
        "[curate.audit]\ncanaries = 2\n[method]\nkind = \"full\"\n[validate]\ncandidates = 100\n";
    let recipe = pipeline_recipe(tmp.path(), &common::sample(), extra);
    let o = clintune(&["run", &s(&recipe)], Some(KEY_A));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    for stage in ["6/9 verify", "7/9 evaluate", "8/9 audit", "9/9 report"] {
        assert!(err.contains(stage), "{stage} missing:\n{err}");
    }
    let v1 = tmp.path().join("checkpoints/pipeline/v1");
    let eval = read_manifest(&tmp.path().join("checkpoints/pipeline/v1-eval"));
    assert_eq!(eval["parents"][0]["id"], read_manifest(&v1)["id"]);
    let audit = tmp.path().join("checkpoints/pipeline/v1-audit/audit.json");
    let audit: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(audit).unwrap()).unwrap();
    assert_eq!(audit["canaries"].as_array().unwrap().len(), 2);
    let page =
        std::fs::read_to_string(tmp.path().join("checkpoints/pipeline/v1-report.html")).unwrap();
    assert!(page.contains("Memorization audit") && page.contains("Evaluation"));
    // The validation settings do not change what is trained.
    let run = read_manifest(&tmp.path().join("run"));
    assert!(run["config"]["recipe"].get("validate").is_none());
}

/// `recipes/dpo.toml` with its paths moved into `dir`.
fn dpo_recipe(dir: &std::path::Path) -> std::path::PathBuf {
    let t = |name: &str| s(&dir.join(name));
    let text = std::fs::read_to_string(repo().join("recipes/dpo.toml"))
        .unwrap()
        .replace(
            "\"datasets/sample/preference\"",
            &format!("\"{}\"", s(&sample().join("preference"))),
        )
        .replace("\"datasets/deid-dpo\"", &format!("\"{}\"", t("deid")))
        .replace("\"datasets/curated-dpo\"", &format!("\"{}\"", t("curated")))
        .replace("\"runs/dpo-base\"", &format!("\"{}\"", t("base")))
        .replace("\"runs/dpo\"", &format!("\"{}\"", t("run")))
        .replace(
            "name = \"dpo\"",
            &format!("name = \"dpo\"\nroot = \"{}\"", t("checkpoints")),
        );
    let recipe = dir.join("dpo.toml");
    std::fs::write(&recipe, text).unwrap();
    recipe
}

#[test]
fn the_dpo_recipe_learns_the_sample_preferences() {
    let tmp = tempfile::tempdir().unwrap();
    let o = clintune(&["run", &s(&dpo_recipe(tmp.path()))], Some(KEY_A));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let metrics = std::fs::read_to_string(tmp.path().join("run/metrics.jsonl")).unwrap();
    let evals: Vec<serde_json::Value> = metrics
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["split"] == "eval")
        .collect();
    let accuracy = |v: &serde_json::Value| v["rewards/accuracies"].as_f64().unwrap();
    let last = evals.last().unwrap();
    assert!(accuracy(last) > 0.5, "validation reward accuracy {last}");
    assert!(last["rewards/margins"].as_f64().unwrap() > 0.0, "{last}");
    let first_loss = evals[0]["loss"].as_f64().unwrap();
    assert!(last["loss"].as_f64().unwrap() < first_loss, "{evals:?}");
    let card = std::fs::read_to_string(tmp.path().join("checkpoints/dpo/v1/README.md")).unwrap();
    assert!(
        card.contains("Objective: DPO (sigmoid loss, beta 0.1"),
        "{card}"
    );
    assert!(card.contains("validation preference pairs"), "{card}");
}
