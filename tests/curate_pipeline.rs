//! End to end: `clintune deid` output becomes a curated dataset, and what a
//! reviewer and the trainer rely on holds (patient-level split, loss masks,
//! dedup, shards, lineage, refusals).

mod common;

use clintune_curate::reader::{PackConfig, PackedReader};
use clintune_text::tokenizer::Tokenizer;
use common::*;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One dataset row as read back.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    example_id: String,
    patient_key: String,
    split: String,
    task: String,
    text: String,
    input_ids: Vec<i32>,
    loss_mask: Vec<i8>,
    num_tokens: i32,
    record_keys: Vec<String>,
}

fn read_split(dir: &Path, split: &str) -> Vec<Row> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(split))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    files.iter().flat_map(|f| read_file(f)).collect()
}

fn read_file(path: &Path) -> Vec<Row> {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int8Type, Int32Type};
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    for batch in reader {
        let b = batch.unwrap();
        let s = |n: &str| b.column_by_name(n).unwrap().as_string::<i32>().clone();
        let l = |n: &str| b.column_by_name(n).unwrap().as_list::<i32>().clone();
        let (id, pk, split, task, text) = (
            s("example_id"),
            s("patient_key"),
            s("split"),
            s("task"),
            s("text"),
        );
        let (ids, mask, keys) = (l("input_ids"), l("loss_mask"), l("record_keys"));
        let n = b
            .column_by_name("num_tokens")
            .unwrap()
            .as_primitive::<Int32Type>()
            .clone();
        for i in 0..b.num_rows() {
            let keys_i = keys.value(i);
            let keys_i = keys_i.as_string::<i32>();
            rows.push(Row {
                example_id: id.value(i).into(),
                patient_key: pk.value(i).into(),
                split: split.value(i).into(),
                task: task.value(i).into(),
                text: text.value(i).into(),
                input_ids: ids.value(i).as_primitive::<Int32Type>().values().to_vec(),
                loss_mask: mask.value(i).as_primitive::<Int8Type>().values().to_vec(),
                num_tokens: n.value(i),
                record_keys: (0..keys_i.len())
                    .map(|j| keys_i.value(j).to_string())
                    .collect(),
            });
        }
    }
    rows
}

fn all_rows(dir: &Path) -> Vec<Row> {
    ["train", "validation", "test"]
        .iter()
        .flat_map(|s| read_split(dir, s))
        .collect()
}

/// De-identified sample curated with the fixture tokenizer.
fn curated(tmp: &Path) -> (PathBuf, PathBuf) {
    let deid = deid_sample(tmp);
    let out = tmp.join("curated");
    let tok = fixture_tokenizer();
    curate_ok(&[
        "--input",
        &s(&deid),
        "--tokenizer",
        &s(&tok),
        "--out",
        &s(&out),
    ]);
    (deid, out)
}

#[test]
fn the_sample_is_split_by_patient_and_every_row_is_consistent() {
    let tmp = tempfile::tempdir().unwrap();
    let (deid, out) = curated(tmp.path());
    let rows = all_rows(&out);
    assert!(rows.len() > 50, "{} rows", rows.len());
    let mut split_of: BTreeMap<&str, &str> = BTreeMap::new();
    for r in &rows {
        let prev = split_of.insert(&r.patient_key, &r.split);
        assert!(
            prev.is_none_or(|p| p == r.split),
            "patient {} in two splits",
            r.patient_key
        );
        assert_eq!(r.num_tokens as usize, r.input_ids.len());
        assert_eq!(r.input_ids.len(), r.loss_mask.len());
        assert!(!r.record_keys.is_empty());
    }
    let tasks: BTreeSet<&str> = rows.iter().map(|r| r.task.as_str()).collect();
    assert_eq!(
        tasks,
        BTreeSet::from(["chat", "next-diagnosis", "preference", "timeline"])
    );
    // Every record key names a de-identified record.
    let known: BTreeSet<String> = read_rows(&deid).into_iter().map(|r| r.record_key).collect();
    assert!(
        rows.iter()
            .flat_map(|r| &r.record_keys)
            .all(|k| known.contains(k))
    );
    // Manifest: parent is the de-identification, counts match the files.
    let m = read_manifest(&out);
    assert_eq!(m["stage"], "curate");
    assert_eq!(m["parents"][0]["id"], read_manifest(&deid)["id"]);
    assert_eq!(m["parents"][0]["path"], "../deid");
    for split in ["train", "validation", "test"] {
        let written: u64 = m["counts"]["examples"][split]
            .as_object()
            .map_or(0, |o| o.values().map(|v| v.as_u64().unwrap()).sum());
        assert_eq!(written as usize, read_split(&out, split).len(), "{split}");
    }
    let card = std::fs::read_to_string(out.join("README.md")).unwrap();
    for heading in [
        "## Motivation",
        "## Composition",
        "## Collection and de-identification",
        "## Preprocessing",
        "## Uses",
        "## Limitations",
    ] {
        assert!(card.contains(heading), "card lacks {heading}");
    }
    assert!(card.contains(m["config"]["dataset_id"].as_str().unwrap()));
    let v = clintune(&["lineage", "verify", &s(&out)], None);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
}

#[test]
fn the_loss_mask_covers_exactly_the_assistant_turns() {
    let tmp = tempfile::tempdir().unwrap();
    let (deid, out) = curated(tmp.path());
    let tok = Tokenizer::load(&out).unwrap();
    let traces: BTreeMap<String, Value> = read_rows(&deid)
        .into_iter()
        .filter(|r| r.resource_type == "ChatTrace")
        .map(|r| (r.record_key, r.fields))
        .collect();
    let chats: Vec<Row> = all_rows(&out)
        .into_iter()
        .filter(|r| r.task == "chat")
        .collect();
    assert!(chats.len() >= 20, "{}", chats.len());
    for row in chats {
        let trace = &traces[&row.record_keys[0]];
        let expected: String = trace["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "assistant")
            .map(|m| format!("{}<|im_end|>\n", m["content"].as_str().unwrap()))
            .collect();
        let masked: Vec<u32> = row
            .input_ids
            .iter()
            .zip(&row.loss_mask)
            .filter(|(_, m)| **m == 1)
            .map(|(t, _)| *t as u32)
            .collect();
        assert_eq!(
            tok.decode(&masked).unwrap(),
            expected,
            "example {}",
            row.example_id
        );
        let ids: Vec<u32> = row.input_ids.iter().map(|&t| t as u32).collect();
        assert_eq!(tok.decode(&ids).unwrap(), row.text);
    }
}

/// A PHI-free clinical paragraph of about 120 words.
const NOTE: &str = "the patient reports two days of productive cough with green sputum and low grade fever. \
she denies chest pain, shortness of breath at rest, hemoptysis or recent travel. on examination \
there are coarse crackles at the right base with dullness to percussion. oxygen saturation is \
ninety four percent on room air and the respiratory rate is twenty. chest radiograph shows a \
right lower lobe consolidation without effusion. white cell count is elevated with a neutrophil \
predominance. the working diagnosis is community acquired pneumonia of moderate severity. plan \
is oral amoxicillin for five days, antipyretics as needed, fluids, and review in clinic after \
the course or sooner if breathing worsens. the family was counselled on warning signs and \
agreed with the plan. follow up chest film in six weeks to confirm resolution.";

fn trace(patient: &str, answer: &str) -> String {
    serde_json::json!({
        "patient_id": patient,
        "messages": [
            {"role": "user", "content": "summarise the assessment and plan from this encounter."},
            {"role": "assistant", "content": answer},
        ]
    })
    .to_string()
}

#[test]
fn planted_exact_and_near_duplicates_are_removed_and_the_rest_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let shouty = NOTE
        .replace("the patient", "The  Patient")
        .replace(". ", ".\n");
    let near = NOTE.replace("ninety four", "ninety two");
    let other = "knee pain after a fall while hiking, no deformity, full range of movement, \
        ligaments stable, no effusion. likely a soft tissue sprain. rest, ice, compression and \
        elevation, simple analgesia, and physiotherapy referral if not improving in two weeks.";
    let lines = [
        trace("p1", NOTE),
        trace("p2", NOTE),
        trace("p3", &shouty),
        trace("p4", &near),
        trace("p5", other),
    ];
    let input = tmp.path().join("traces.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let deid = tmp.path().join("deid");
    let o = deid_cmd(&input, &deid);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let config = tmp.path().join("chat-only.toml");
    std::fs::write(
        &config,
        "[tasks.timeline]\nenabled = false\n[tasks.next-diagnosis]\nenabled = false\n",
    )
    .unwrap();
    let out = tmp.path().join("curated");
    let tok = fixture_tokenizer();
    curate_ok(&[
        "--input",
        &s(&deid),
        "--config",
        &s(&config),
        "--tokenizer",
        &s(&tok),
        "--out",
        &s(&out),
    ]);
    let m = read_manifest(&out);
    assert_eq!(m["counts"]["duplicates"]["exact"], 2, "{}", m["counts"]);
    assert_eq!(m["counts"]["duplicates"]["near"], 1, "{}", m["counts"]);
    let rows = all_rows(&out);
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows.iter().filter(|r| r.text.contains("knee pain")).count(),
        1
    );
    assert_eq!(
        rows.iter()
            .filter(|r| r
                .text
                .to_lowercase()
                .contains("community acquired pneumonia"))
            .count(),
        1
    );
}

fn deid_cmd(input: &Path, out: &Path) -> std::process::Output {
    deid(&[input], out, KEY_A, &[])
}

#[test]
fn three_shards_merged_equal_a_single_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (deid, single) = curated(tmp.path());
    let tok = fixture_tokenizer();
    let shards: Vec<PathBuf> = (0..3)
        .map(|i| tmp.path().join(format!("shard-{i}")))
        .collect();
    for (i, dir) in shards.iter().enumerate() {
        let shard = format!("{i}/3");
        curate_ok(&[
            "--input",
            &s(&deid),
            "--tokenizer",
            &s(&tok),
            "--shard",
            &shard,
            "--out",
            &s(dir),
        ]);
    }
    let merged = tmp.path().join("merged");
    let mut args = vec!["merge".to_string(), "--out".into(), s(&merged)];
    args.extend(shards.iter().rev().map(|p| s(p)));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    curate_ok(&refs);
    for split in ["train", "validation", "test"] {
        let (a, b) = (read_split(&single, split), read_split(&merged, split));
        assert!(!a.is_empty(), "{split}");
        assert_eq!(a, b, "{split} differs");
    }
    let (ms, mm) = (read_manifest(&single), read_manifest(&merged));
    assert_eq!(ms["counts"], mm["counts"]);
    assert_eq!(ms["config"]["dataset_id"], mm["config"]["dataset_id"]);
    assert_eq!(mm["parents"][0]["id"], read_manifest(&deid)["id"]);
    let v = clintune(&["lineage", "verify", &s(&merged)], None);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));

    // Shards that do not make a whole are refused.
    let bad = clintune(
        &[
            "curate",
            "merge",
            "--out",
            &s(&tmp.path().join("bad")),
            &s(&shards[0]),
            &s(&shards[1]),
        ],
        None,
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("shard 2/3 is missing"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let twice = clintune(
        &[
            "curate",
            "merge",
            "--out",
            &s(&tmp.path().join("bad")),
            &s(&shards[0]),
            &s(&shards[0]),
            &s(&shards[1]),
        ],
        None,
    );
    assert!(String::from_utf8_lossy(&twice.stderr).contains("given twice"));
    assert!(!tmp.path().join("bad").exists());
}

#[test]
fn input_that_does_not_verify_is_refused_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let deid = deid_sample(tmp.path());
    let part = deid.join("records/part-00000.parquet");
    let bytes = std::fs::read(&part).unwrap();
    std::fs::write(&part, &bytes[..bytes.len() / 2]).unwrap();
    let out = tmp.path().join("curated");
    let o = clintune(
        &[
            "curate",
            "--input",
            &s(&deid),
            "--tokenizer",
            &s(&fixture_tokenizer()),
            "--out",
            &s(&out),
        ],
        None,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("does not verify") && err.contains("part-00000.parquet"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn only_deid_output_is_accepted_and_configs_are_strict() {
    let tmp = tempfile::tempdir().unwrap();
    let (deid, curated) = curated(tmp.path());
    let out = tmp.path().join("again");
    let tok = s(&fixture_tokenizer());
    let o = clintune(
        &[
            "curate",
            "--input",
            &s(&curated),
            "--tokenizer",
            &tok,
            "--out",
            &s(&out),
        ],
        None,
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("stage is `curate`"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = clintune(
        &[
            "curate",
            "--input",
            &s(&sample()),
            "--tokenizer",
            &tok,
            "--out",
            &s(&out),
        ],
        None,
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a de-identification output"));
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "[dedup]\nthreshhold = 0.5\n").unwrap();
    let o = clintune(
        &[
            "curate",
            "--input",
            &s(&deid),
            "--config",
            &s(&bad),
            "--out",
            &s(&out),
        ],
        None,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("threshhold") && err.contains("line 2"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn a_trained_tokenizer_is_used_and_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let deid = deid_sample(tmp.path());
    let tok_dir = tmp.path().join("tok");
    let o = clintune(
        &[
            "tokenizer",
            "train",
            "--input",
            &s(&deid),
            "--vocab-size",
            "600",
            "--out",
            &s(&tok_dir),
        ],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let tok = Tokenizer::load(&tok_dir).unwrap();
    assert_eq!(tok.vocab_size(), 600);
    let out = tmp.path().join("curated");
    curate_ok(&[
        "--input",
        &s(&deid),
        "--tokenizer",
        &s(&tok_dir),
        "--out",
        &s(&out),
    ]);
    let m = read_manifest(&out);
    let input = m["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["kind"] == "tokenizer")
        .unwrap();
    let trained = clintune_core::hash::file_digest(&tok_dir.join("tokenizer.json")).unwrap();
    assert_eq!(input["sha256"], trained.sha256);
    let max_id = all_rows(&out)
        .iter()
        .flat_map(|r| r.input_ids.clone())
        .max()
        .unwrap();
    assert!(max_id < 600);
}

#[test]
fn without_a_tokenizer_one_is_trained_on_the_train_split() {
    let tmp = tempfile::tempdir().unwrap();
    let deid = deid_sample(tmp.path());
    let config = tmp.path().join("small.toml");
    std::fs::write(&config, "[tokenizer]\nvocab_size = 500\n").unwrap();
    let out = tmp.path().join("curated");
    curate_ok(&[
        "--input",
        &s(&deid),
        "--config",
        &s(&config),
        "--out",
        &s(&out),
    ]);
    let tok = Tokenizer::load(&out).unwrap();
    assert_eq!(tok.vocab_size(), 500);
    assert!(tok.token_id("<|im_start|>").is_some());
    // A shard must not train its own.
    let o = clintune(
        &[
            "curate",
            "--input",
            &s(&deid),
            "--shard",
            "0/2",
            "--out",
            &s(&tmp.path().join("s")),
        ],
        None,
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("--shard needs --tokenizer"));
}

#[test]
fn the_reader_streams_a_curated_split_and_resumes_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, out) = curated(tmp.path());
    let m = read_manifest(&out);
    let split = "validation";
    let tokens: u64 = m["counts"]["tokens"][split]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    let cfg = PackConfig {
        seq_len: 256,
        batch_size: 2,
        seed: 7,
        shuffle: true,
        pack: true,
        pad_id: 3,
    };
    let mut reader = PackedReader::open(&out, split, cfg.clone()).unwrap();
    assert_eq!(reader.num_tokens(), tokens);
    let mut seen = 0u64;
    let mut batches = Vec::new();
    while reader.cursor().epoch == 0 {
        let b = reader.next_batch();
        seen += b.real_tokens() as u64;
        batches.push((reader.cursor(), b));
    }
    assert_eq!(seen, tokens);
    let (cursor, _) = &batches[batches.len() / 2];
    let mut resumed = PackedReader::open(&out, split, cfg).unwrap();
    resumed.seek(*cursor).unwrap();
    for (_, expected) in &batches[batches.len() / 2 + 1..] {
        assert_eq!(&resumed.next_batch(), expected);
    }
}

#[test]
fn preference_pairs_hold_their_prompt_once_and_each_answer_after_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (deid, out) = curated(tmp.path());
    let tok = Tokenizer::load(&out).unwrap();
    let records: BTreeMap<String, Value> = read_rows(&deid)
        .into_iter()
        .filter(|r| r.resource_type == "PreferencePair")
        .map(|r| (r.record_key, r.fields))
        .collect();
    let rows: BTreeMap<String, Row> = all_rows(&out)
        .into_iter()
        .filter(|r| r.task == "preference")
        .map(|r| (r.example_id.clone(), r))
        .collect();
    let turns = |messages: &Value| -> String {
        let list = messages.as_array().unwrap();
        list.iter()
            .map(|m| format!("{}<|im_end|>\n", m["content"].as_str().unwrap()))
            .collect()
    };
    let scored = |ids: &[u32], mask: &[u8]| -> String {
        let kept: Vec<u32> = ids
            .iter()
            .zip(mask)
            .filter(|(_, m)| **m == 1)
            .map(|(t, _)| *t)
            .collect();
        tok.decode(&kept).unwrap()
    };
    let mut seen = 0;
    for split in ["train", "validation", "test"] {
        for pair in clintune_curate::pairs::read_pairs(&out, split).unwrap() {
            let row = &rows[&pair.example_id];
            assert_eq!(row.split, split);
            let fields = &records[&row.record_keys[0]];
            assert_eq!(
                scored(&pair.chosen, &pair.chosen_mask),
                turns(&fields["chosen"])
            );
            assert_eq!(
                scored(&pair.rejected, &pair.rejected_mask),
                turns(&fields["rejected"])
            );
            let prompt = tok.decode(&pair.prompt).unwrap();
            let question = fields["prompt"][1]["content"].as_str().unwrap();
            assert!(prompt.contains(question), "{prompt}");
            assert!(prompt.ends_with("<|im_start|>assistant\n"), "{prompt}");
            // The row is also an ordinary example of the preferred answer.
            let whole: Vec<i32> = pair
                .prompt
                .iter()
                .chain(&pair.chosen)
                .map(|&t| t as i32)
                .collect();
            assert_eq!(row.input_ids, whole);
            seen += 1;
        }
    }
    assert_eq!(seen, 120);
    assert_eq!(rows.len(), 120);
}
