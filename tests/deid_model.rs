//! The learned PHI model: its training reproduces committed weights byte
//! for byte, and the command's errors and modes say what they do.

mod common;

use common::*;
use std::path::Path;

/// Trains with `clintune deid train-model` and returns the file it wrote.
fn train(format: &str, corpus: &Path, name: &str, out: &Path, extra: &[&str]) -> String {
    let (corpus, out) = (s(corpus), s(out));
    let mut args = vec![
        "deid",
        "train-model",
        "--format",
        format,
        &corpus,
        "--name",
        name,
        "--out",
        &out,
    ];
    args.extend_from_slice(extra);
    let run = clintune(&args, None);
    ok(&run);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("out-of-fold") && stdout.contains("balanced:"),
        "{stdout}"
    );
    std::fs::read_to_string(out).unwrap()
}

#[test]
fn training_on_the_synthetic_transcripts_reproduces_the_committed_model() {
    let dir = tempfile::tempdir().unwrap();
    let made = train(
        "brat",
        &repo().join("tests/fixtures/deid-transcripts"),
        "deid-transcripts",
        &dir.path().join("m.txt"),
        &[],
    );
    let committed =
        std::fs::read_to_string(repo().join("tests/fixtures/deid-model/transcripts-model.txt"))
            .unwrap();
    assert!(made.lines().count() > 1000, "a real model, not a header");
    assert!(
        made == committed,
        "training no longer reproduces the committed weights"
    );
}

/// The shipped model is trained on the development half of the PhysioNet
/// corpus, which may not be committed (GPL): where `../shared` has it, the
/// training must reproduce `deid/dictionaries/phi-model.txt` exactly.
#[test]
fn the_shipped_model_reproduces_from_the_development_corpus_where_it_is_present() {
    let corpus = repo().join("../shared/corpora/physionet-deid-dev");
    if !corpus.join("id.text").is_file() {
        eprintln!("skipped: {} is not here", corpus.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let made = train(
        "physionet",
        &corpus,
        "physionet-deid-dev",
        &dir.path().join("m.txt"),
        &[],
    );
    let shipped = std::fs::read_to_string(repo().join("deid/dictionaries/phi-model.txt")).unwrap();
    assert!(
        made == shipped,
        "the shipped model is not what its training gives"
    );
}

#[test]
fn a_corpus_without_annotations_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    std::fs::create_dir_all(&corpus).unwrap();
    std::fs::write(corpus.join("a.txt"), "Seen by Dr. Quaxworth.").unwrap();
    let out = dir.path().join("m.txt");
    let run = clintune(
        &[
            "deid",
            "train-model",
            "--format",
            "brat",
            &s(&corpus),
            "--out",
            &s(&out),
        ],
        None,
    );
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("no annotated PHI spans") && err.contains("corpus"),
        "{err}"
    );
    assert!(!out.exists());
}

/// `clintune deid eval` of the synthetic transcripts with `extra` options.
fn eval_transcripts(extra: &[&str]) -> std::process::Output {
    let corpus = s(&repo().join("tests/fixtures/deid-transcripts"));
    let mut args = vec!["deid", "eval", "--format", "brat", &corpus];
    args.extend_from_slice(extra);
    clintune(&args, None)
}

#[test]
fn eval_says_whether_the_model_decides_and_can_score_the_rules_alone() {
    // Strict mode: alone, the rules replace every unknown word; with the
    // model, only those it marks. (In balanced mode the rules and the model
    // happen to agree on these transcripts.)
    let said = |extra: &[&str]| {
        let run = eval_transcripts(&[&["--mode", "strict"], extra].concat());
        ok(&run);
        String::from_utf8_lossy(&run.stdout).into_owned()
    };
    let with = said(&[]);
    assert!(with.contains("mode strict, learned model"), "{with}");
    let alone = said(&["--rules-only"]);
    assert!(alone.contains("mode strict, rules alone"), "{alone}");
    assert_ne!(
        with.lines().find(|l| l.starts_with("PPV")),
        alone.lines().find(|l| l.starts_with("PPV")),
        "the model changes the decision"
    );
}

/// The repository's policy over a copy of its dictionaries in `dir`, whose
/// model file `edit` may change or remove.
fn policy_over_copied_dictionaries(dir: &Path, edit: impl FnOnce(&Path)) -> std::path::PathBuf {
    let dicts = dir.join("dictionaries");
    copy_dir(&repo().join("deid/dictionaries"), &dicts);
    edit(&dicts.join("phi-model.txt"));
    let policy = dir.join("policy.toml");
    std::fs::copy(repo().join("deid/safe-harbor.toml"), &policy).unwrap();
    policy
}

#[test]
fn a_stale_model_file_does_not_stop_its_retraining_and_eval_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_over_copied_dictionaries(dir.path(), |model| {
        let stale = std::fs::read_to_string(model).unwrap() + "0.5\tno-such-template\tx\n";
        std::fs::write(model, stale).unwrap();
    });
    let policy = s(&policy);
    let eval = eval_transcripts(&["--policy", &policy]);
    assert!(!eval.status.success());
    let err = String::from_utf8_lossy(&eval.stderr);
    assert!(
        err.contains("phi-model.txt") && err.contains("unknown feature template"),
        "{err}"
    );
    ok(&eval_transcripts(&["--policy", &policy, "--rules-only"]));
    // Training reads the rules, not the file it replaces: the same weights
    // as the committed model trained over the repository's own folder.
    let made = train(
        "brat",
        &repo().join("tests/fixtures/deid-transcripts"),
        "deid-transcripts",
        &dir.path().join("dictionaries/phi-model.txt"),
        &["--policy", &policy],
    );
    let committed =
        std::fs::read_to_string(repo().join("tests/fixtures/deid-model/transcripts-model.txt"))
            .unwrap();
    assert!(made == committed);
}

#[test]
fn a_run_says_when_the_rules_decide_alone() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_over_copied_dictionaries(dir.path(), |model| {
        std::fs::remove_file(model).unwrap();
    });
    for (extra, decider) in [
        (vec!["--policy", policy.to_str().unwrap()], "rules alone"),
        (vec![], "learned model"),
    ] {
        let out = dir.path().join(format!("out-{}", extra.len()));
        let run = deid(&[&sample()], &out, KEY_A, &extra);
        ok(&run);
        let manifest = std::fs::read_to_string(out.join("manifest.json")).unwrap();
        assert!(
            manifest.contains(&format!("\"text_decider\": \"{decider}\"")),
            "{manifest}"
        );
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(said.contains(&format!("mode, {decider}")), "{said}");
    }
}
