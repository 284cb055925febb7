//! The dataset card: a README in the style of Datasheets for Datasets
//! (Gebru et al., 2021), generated from the run's configuration and counts.

use crate::config::CurateConfig;
use crate::schema::{SCHEMA_VERSION, SPLITS};
use crate::stats::Tallies;
use crate::tasks::Task;
use clintune_lineage::ParentRef;
use std::fmt::Write;

/// What the card is written from.
#[derive(Debug)]
pub struct CardFacts<'a> {
    /// The dataset id in every split file.
    pub dataset_id: &'a str,
    /// The de-identification manifest.
    pub parent: &'a ParentRef,
    /// The configuration.
    pub config: &'a CurateConfig,
    /// The counts.
    pub tallies: &'a Tallies,
    /// SHA-256 of the dataset's `tokenizer.json`.
    pub tokenizer_sha256: &'a str,
}

/// The card as Markdown.
pub fn render(f: &CardFacts<'_>) -> String {
    let mut s = String::new();
    let sections: [fn(&CardFacts<'_>, &mut String) -> std::fmt::Result; 7] = [
        header,
        motivation,
        composition,
        collection,
        preprocessing,
        uses,
        limitations,
    ];
    for section in sections {
        // Writing to a String cannot fail.
        let _ = section(f, &mut s);
    }
    s
}

fn header(f: &CardFacts<'_>, s: &mut String) -> std::fmt::Result {
    writeln!(s, "# Dataset card\n")?;
    writeln!(
        s,
        "Made by `clintune curate` {} (schema version {SCHEMA_VERSION}).\n",
        clintune_core::TOOL_VERSION
    )?;
    writeln!(
        s,
        "- Dataset id (in every file's Parquet metadata, `clintune.dataset_id`): `{}`",
        f.dataset_id
    )?;
    writeln!(
        s,
        "- De-identification manifest: `{}` (`{}`)",
        f.parent.id, f.parent.path
    )?;
    writeln!(s, "- Curation config hash: `{}`", f.config.hash())?;
    writeln!(
        s,
        "- Tokenizer: `tokenizer.json`, SHA-256 `{}`",
        f.tokenizer_sha256
    )?;
    writeln!(
        s,
        "- Every file's hash is in `manifest.json`; `clintune lineage verify .` rechecks them and the chain back to the source records.\n"
    )
}

fn motivation(_: &CardFacts<'_>, s: &mut String) -> std::fmt::Result {
    writeln!(s, "## Motivation\n")?;
    writeln!(
        s,
        "Fine-tuning data for adapting a clinical foundation model to one institution's records: its patients' longitudinal histories, clinical reasoning over them, and its own workflow traces. Made so that the model can be trained without any protected health information leaving de-identification, and so that every example can be traced to the records it came from.\n"
    )
}

fn composition(f: &CardFacts<'_>, s: &mut String) -> std::fmt::Result {
    let t = f.tallies;
    writeln!(s, "## Composition\n")?;
    writeln!(
        s,
        "One example per row. Patients are split by a keyed hash of their pseudonymous key (salt in the config), so no patient is in two splits.\n"
    )?;
    writeln!(
        s,
        "| split | patients | examples | tokens | trained tokens |"
    )?;
    writeln!(s, "|---|---:|---:|---:|---:|")?;
    for split in SPLITS {
        writeln!(
            s,
            "| {split} | {} | {} | {} | {} |",
            t.patients.get(split).copied().unwrap_or(0),
            t.split_examples(split),
            t.split_tokens(split),
            t.trained_tokens.get(split).copied().unwrap_or(0)
        )?;
    }
    writeln!(s, "\n| task | what an example is | examples |")?;
    writeln!(s, "|---|---|---:|")?;
    for (task, what) in TASKS {
        let n: u64 = t.examples.values().filter_map(|c| c.get(task)).sum();
        writeln!(s, "| `{task}` | {what} | {n} |")?;
    }
    writeln!(
        s,
        "\nColumns: `example_id` (content hash), `patient_key` (pseudonym), `split`, `task`, `text` (as rendered), `input_ids` (list<int32>), `loss_mask` (list<int8>, 1 on trained tokens: all of a text, the assistant turns of a chat), `num_tokens` (int32), `record_keys` (pseudonymous keys of the de-identified records used), `prompt_tokens` (int32), `rejected_ids` (list<int32>), `rejected_mask` (list<int8>).\n"
    )?;
    pairs(f, s)
}

/// What a preference row holds, when the dataset has any.
fn pairs(f: &CardFacts<'_>, s: &mut String) -> std::fmt::Result {
    let task = Task::Preference.as_str();
    let by_split: Vec<String> = SPLITS
        .iter()
        .map(|split| {
            let n = f.tallies.examples.get(*split).and_then(|c| c.get(task));
            format!("{} {split}", n.copied().unwrap_or(0))
        })
        .collect();
    if !f.tallies.examples.values().any(|c| c.contains_key(task)) {
        return Ok(());
    }
    writeln!(
        s,
        "Preference pairs ({}): one row per pair. `input_ids` holds the prompt, rendered once with the chat template up to where the assistant's answer starts, then the chosen answer (`loss_mask` 1 on its assistant tokens), so supervised fine-tuning reads the row as an example of the preferred answer; `prompt_tokens` says where the prompt ends; `rejected_ids` and `rejected_mask` hold the rejected answer after the same prompt. Pairs were deduplicated on the prompt and split with their patient. DPO (`[objective] kind = \"dpo\"`) trains on them.\n",
        by_split.join(", ")
    )
}

const TASKS: [(&str, &str); 4] = [
    (
        "timeline",
        "a patient's history as dated text (encounters, diagnoses, medications, procedures, observations, notes), in chunks",
    ),
    (
        "next-diagnosis",
        "chat: the structured history before an encounter → the diagnoses recorded at it",
    ),
    ("chat", "a de-identified workflow trace, as it was"),
    (
        "preference",
        "a prompt with a preferred and a rejected answer (a clinician's preference)",
    ),
];

fn collection(_: &CardFacts<'_>, s: &mut String) -> std::fmt::Result {
    writeln!(s, "## Collection and de-identification\n")?;
    writeln!(
        s,
        "Built only from the output of `clintune deid`, whose manifest was verified before reading. There, records were de-identified by HIPAA Safe Harbor: an allowlist policy of kept fields, keyed pseudonyms for identifiers, one keyed date shift per patient, ages over 89 grouped, ZIP codes cut to three digits, and free text scrubbed of names, places, dates, contact details and identifiers. The de-identification manifest names the policy, the key id and the source files by hash.\n"
    )
}

fn preprocessing(f: &CardFacts<'_>, s: &mut String) -> std::fmt::Result {
    let t = f.tallies;
    let c = f.config;
    let get = |m: &crate::stats::Counts, k: &str| m.get(k).copied().unwrap_or(0);
    writeln!(s, "## Preprocessing\n")?;
    writeln!(s, "- Built: {}", list(&t.built))?;
    writeln!(s, "- Skipped while building: {}", list(&t.skipped))?;
    writeln!(
        s,
        "- Length filters (at least {} characters, {}–{} tokens): removed {}",
        c.filter.min_chars,
        c.filter.min_tokens,
        c.filter.max_tokens,
        list(&t.filtered)
    )?;
    writeln!(
        s,
        "- Exact duplicates (same text after lowercasing and whitespace folding): {} removed",
        get(&t.duplicates, "exact")
    )?;
    writeln!(
        s,
        "- Near duplicates (MinHash over {}-word shingles, {} permutations, Jaccard ≥ {}): {} removed",
        c.dedup.shingle_words,
        c.dedup.num_perm,
        c.dedup.threshold,
        get(&t.duplicates, "near")
    )?;
    writeln!(
        s,
        "- Of each group of duplicates the example with the smallest id is kept, so the result does not depend on input order or sharding."
    )?;
    writeln!(
        s,
        "- Chat examples are rendered with the tokenizer's chat template (`tokenizer_config.json`), plain text ends with the end-of-text token.\n"
    )
}

fn list(counts: &crate::stats::Counts) -> String {
    if counts.is_empty() {
        return "none".into();
    }
    counts
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn uses(_: &CardFacts<'_>, s: &mut String) -> std::fmt::Result {
    writeln!(s, "## Uses\n")?;
    writeln!(
        s,
        "- Intended: fine-tuning and evaluating language models inside the institution (`clintune train`), with validation and test splits held out by patient."
    )?;
    writeln!(
        s,
        "- Not intended: clinical decision-making about any patient; re-identification attempts; release outside the governance that covers the source records.\n"
    )
}

fn limitations(_: &CardFacts<'_>, s: &mut String) -> std::fmt::Result {
    writeln!(s, "## Limitations\n")?;
    writeln!(
        s,
        "- Automatic free-text de-identification misses some PHI (see the de-identification stage's measured recall); treat the dataset as limited data, not as public."
    )?;
    writeln!(
        s,
        "- Dates are shifted per patient: intervals within a patient are real, calendar dates and seasons are not."
    )?;
    writeln!(
        s,
        "- Next-diagnosis answers are the diagnoses recorded at an encounter, with the biases of coding practice; encounters are grouped by calendar day."
    )?;
    writeln!(
        s,
        "- The examples reflect the institution's population and documentation habits, and inherit their gaps."
    )
}
