//! `clintune export` end to end: versions are immutable and listed in the
//! registry, the export verifies down to the source records, and tampering
//! anywhere on the chain is caught and named.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

const MODEL: &str = "tests/fixtures/llama/llama-gqa-rope3";

/// De-identify, curate and train a few LoRA steps; returns the run dir.
fn trained_run(tmp: &Path) -> (PathBuf, PathBuf) {
    let data = curated_sample(tmp, MODEL);
    let run = tmp.join("run");
    let recipe = tmp.join("recipe.toml");
    let text = format!(
        "[model]\nbase = \"{MODEL}\"\n[data]\ndataset = \"{}\"\nseq_len = 128\nmicro_batch = 2\n\
         [lora]\nrank = 2\ntargets = [\"q\", \"v\"]\n[train]\nmax_steps = 3\neval_batches = 1\noutput = \"{}\"\n",
        s(&data),
        s(&run)
    );
    std::fs::write(&recipe, text).unwrap();
    let o = clintune(&["train", &s(&recipe)], None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (run, data)
}

fn export(run: &Path, root: &Path) -> std::process::Output {
    clintune(
        &["export", &s(run), "--name", "notes", "--root", &s(root)],
        None,
    )
}

fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn exports_are_new_immutable_versions_that_verify_to_the_source() {
    let tmp = tempfile::tempdir().unwrap();
    let (run, data) = trained_run(tmp.path());
    let root = tmp.path().join("checkpoints");
    assert!(export(&run, &root).status.success());
    let v1 = root.join("notes/v1");
    let before = snapshot(&v1);
    for f in [
        "model.safetensors",
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "README.md",
        "manifest.json",
        "adapter/adapter_model.safetensors",
        "adapter/adapter_config.json",
    ] {
        assert!(v1.join(f).is_file(), "{f}");
    }
    let o = export(&run, &root);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(snapshot(&v1), before, "v1 changed when v2 was made");
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("notes/index.json")).unwrap())
            .unwrap();
    let versions = index["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[1]["path"], "v2");
    assert_eq!(versions[0]["manifest_id"], read_manifest(&v1)["id"]);
    assert_eq!(versions[0]["parent_id"], read_manifest(&run)["id"]);

    // The weights say which run they came from; config.json says bf16.
    let bytes = std::fs::read(v1.join("model.safetensors")).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(
        header.metadata().as_ref().unwrap()["clintune_run"],
        read_manifest(&run)["id"].as_str().unwrap()
    );
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(v1.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["torch_dtype"], "bfloat16");
    let card = std::fs::read_to_string(v1.join("README.md")).unwrap();
    assert!(card.contains(read_manifest(&data)["id"].as_str().unwrap()));

    let o = clintune(&["lineage", "verify", &s(&v1)], None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.contains("4 manifest"), "{said}");
    let o = clintune(&["export", "verify", &s(&v1)], None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // 2 layers x 9 tensors + embeddings, norm, head; rank-2 adapters on q and v.
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        said.contains("21 model tensors and 8 adapter tensors"),
        "{said}"
    );

    // The chain as OpenLineage run events: records → dataset → run → export,
    // each naming its parent's run.
    let o = clintune(
        &["lineage", "show", &s(&v1), "--format", "openlineage"],
        None,
    );
    assert!(o.status.success());
    let events: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let jobs: Vec<&str> = events
        .iter()
        .map(|e| e["job"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        jobs,
        [
            "clintune.deid",
            "clintune.curate",
            "clintune.train",
            "clintune.export"
        ]
    );
    for pair in events.windows(2) {
        assert_eq!(
            pair[1]["run"]["facets"]["parent"]["run"]["runId"],
            pair[0]["run"]["runId"]
        );
        assert_eq!(pair[1]["eventType"], "COMPLETE");
    }
    let shard_listed = events[1]["outputs"].as_array().unwrap().iter().any(|d| {
        d["name"].as_str().unwrap().ends_with(".parquet")
            && d["facets"]["clintune_file"]["sha256"].is_string()
    });
    assert!(shard_listed);

    // A config that does not describe the weights is caught by name, as is a
    // dtype that is not the one config.json declares.
    let copy = tmp.path().join("copy");
    std::fs::create_dir_all(copy.join("adapter")).unwrap();
    for (from, _) in snapshot(&v1) {
        let rel = from.strip_prefix(&v1).unwrap();
        std::fs::copy(&from, copy.join(rel)).unwrap();
    }
    let edit_config = |key: &str, value: Value| {
        let path = copy.join("config.json");
        let mut c: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        c[key] = value;
        std::fs::write(&path, c.to_string()).unwrap();
    };
    edit_config("num_hidden_layers", Value::from(3));
    let err = clintune_export::verify::check_structure(&copy)
        .unwrap_err()
        .to_string();
    assert!(err.contains("model.layers.2.mlp.down_proj.weight"), "{err}");
    edit_config("num_hidden_layers", Value::from(2));
    edit_config("torch_dtype", Value::from("float32"));
    let err = clintune_export::verify::check_structure(&copy)
        .unwrap_err()
        .to_string();
    assert!(err.contains("BF16") && err.contains("F32"), "{err}");

    // Sharded above --max-shard-mb, with an index; the same weights.
    let load = |dir: &Path| {
        let config = clintune_model::ModelConfig::load(dir).unwrap();
        let weights = clintune_model::WeightFiles::open(dir).unwrap();
        let model: clintune_model::Llama<clintune_model::Cpu> =
            clintune_model::Llama::load(&config, &weights, &Default::default()).unwrap();
        let batch = clintune_model::Batch::unpacked(&[vec![5, 17, 300, 41, 2]]);
        model.forward(&batch).into_data().to_vec::<f32>().unwrap()
    };
    let (whole, sharded) = (tmp.path().join("whole"), tmp.path().join("sharded"));
    for (root, mb) in [(&whole, "0"), (&sharded, "0.1")] {
        let o = clintune(
            &[
                "export",
                &s(&run),
                "--name",
                "n",
                "--root",
                &s(root),
                "--dtype",
                "f32",
                "--max-shard-mb",
                mb,
            ],
            None,
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let shards = std::fs::read_dir(sharded.join("n/v1"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("model-0000")
        })
        .count();
    assert!(shards >= 3, "{shards} shards");
    assert!(sharded.join("n/v1/model.safetensors.index.json").is_file());
    let o = clintune(&["export", "verify", &s(&sharded.join("n/v1"))], None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(load(&whole.join("n/v1")), load(&sharded.join("n/v1")));

    // Flip one byte of a dataset shard: verifying the export fails and names it.
    let shard = std::fs::read_dir(data.join("train"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "parquet"))
        .unwrap();
    let mut bytes = std::fs::read(&shard).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&shard, bytes).unwrap();
    let o = clintune(&["lineage", "verify", &s(&v1)], None);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    let name = shard.file_name().unwrap().to_string_lossy();
    assert!(err.contains(&*name), "{err}");
    // A run whose lineage is broken is not exported.
    assert!(!export(&run, &root).status.success());
}
