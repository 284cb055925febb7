//! `clintune train` end to end on the bundled sample and the reference
//! Llama: exact resume (also after `kill -9`), metrics in TensorBoard's
//! format, a verifiable manifest, and errors that name what is wrong.

mod common;

use clintune_train::tensorboard::read_run;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const MODEL: &str = "tests/fixtures/llama/llama-gqa-rope3";

fn dataset(tmp: &Path) -> PathBuf {
    curated_sample(tmp, MODEL)
}

/// A recipe for a short LoRA run (dropout on, so reseeding is exercised).
fn recipe(tmp: &Path, name: &str, dataset: &Path, steps: u64, extra: &str) -> PathBuf {
    let text = format!(
        r#"[model]
base = "{MODEL}"
[data]
dataset = "{dataset}"
seq_len = 256
micro_batch = 2
grad_accum = 2
shuffle = false
[lora]
rank = 4
alpha = 8
dropout = 0.1
targets = ["q", "v", "down"]
[optimizer]
lr = 5e-3
[schedule]
warmup_steps = 2
[train]
max_steps = {steps}
checkpoint_every = 2
keep_last = 2
eval_every = 4
eval_batches = 2
output = "{out}"
{extra}
"#,
        dataset = s(dataset),
        out = s(&tmp.join(name)),
    );
    let path = tmp.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn train(recipe: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["train", recipe.to_str().unwrap()];
    args.extend_from_slice(extra);
    clintune(&args, None)
}

fn ok(o: std::process::Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    err
}

/// Every node of a run succeeded; if not, every node's log, since the node
/// that failed first is not always the one that reports it.
fn all_ok(outs: Vec<std::process::Output>) {
    if outs.iter().all(|o| o.status.success()) {
        return;
    }
    let logs: Vec<String> = outs
        .iter()
        .enumerate()
        .map(|(rank, o)| {
            let err = String::from_utf8_lossy(&o.stderr);
            format!("--- node {rank} ({}) ---\n{err}", o.status)
        })
        .collect();
    panic!("a node failed:\n{}", logs.join("\n"));
}

fn last_checkpoint(run: &Path) -> PathBuf {
    entries_with_prefix(&run.join("checkpoints"), "step-")
        .pop()
        .unwrap()
}

/// The deterministic part of each metrics line (timings dropped).
fn curve(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("tokens_per_s");
            v
        })
        .collect()
}

fn same_result(a: &Path, b: &Path) {
    let (ca, cb) = (last_checkpoint(a), last_checkpoint(b));
    assert_eq!(ca.file_name(), cb.file_name());
    let state = |dir: &Path| {
        let mut v: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("state.json")).unwrap())
                .unwrap();
        // The recipes differ only in train.output.
        v.as_object_mut().unwrap().remove("recipe_hash");
        v
    };
    assert_eq!(state(&ca), state(&cb));
    // Equal weights after the resumed steps also show the optimizer's
    // moments came back exactly: AdamW's updates depend on them. (The
    // optimizer file itself is a map burn writes in varying order.)
    let adapter = |dir: &Path| std::fs::read(dir.join("adapter_model.safetensors")).unwrap();
    assert!(adapter(&ca) == adapter(&cb), "adapters differ");
    assert_eq!(curve(a), curve(b));
    assert_eq!(tensorboard_losses(a), tensorboard_losses(b));
    // The steps trained on something: the comparison is not of untouched
    // adapters.
    let trained = curve(a)
        .iter()
        .filter(|v| v["split"] == "train" && v["grad_norm"].as_f64().unwrap() > 0.0)
        .count();
    assert!(trained >= 4, "only {trained} steps trained on any token");
}

#[test]
fn an_interrupted_run_resumes_bit_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let whole = recipe(tmp.path(), "whole", &data, 8, "");
    ok(train(&whole, &[]));

    // N steps, then resume for the other N.
    let split = recipe(tmp.path(), "split", &data, 8, "");
    let said = ok(train(&split, &["--stop-after", "4"]));
    assert!(said.contains("--resume"), "{said}");
    assert!(!tmp.path().join("split/manifest.json").exists());
    let refused = train(&split, &[]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--resume"));
    // Resuming with another recipe (a changed learning rate) is refused.
    let changed = tmp.path().join("split-changed.toml");
    let text = std::fs::read_to_string(&split).unwrap();
    std::fs::write(&changed, text.replace("lr = 5e-3", "lr = 4e-3")).unwrap();
    let refused = train(&changed, &["--resume"]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("started with another recipe"),
        "{err}"
    );
    ok(train(&split, &["--resume"]));
    same_result(&tmp.path().join("whole"), &tmp.path().join("split"));

    // kill -9 once the first checkpoint is down, wherever the run then is
    // (a step, an evaluation, or halfway through writing a checkpoint).
    let killed = recipe(tmp.path(), "killed", &data, 8, "");
    let mut child = Command::new(env!("CARGO_BIN_EXE_clintune"))
        .args(["train", killed.to_str().unwrap()])
        .current_dir(repo())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let first = tmp
        .path()
        .join("killed/checkpoints/step-00000002/state.json");
    let start = Instant::now();
    while !first.exists() && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    // What a kill during a checkpoint write leaves behind is ignored.
    let partial = tmp.path().join("killed/checkpoints/.step-00000006.partial");
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::write(partial.join("optimizer.mpk"), b"half").unwrap();
    ok(train(&killed, &["--resume"]));
    same_result(&tmp.path().join("whole"), &tmp.path().join("killed"));
}

/// The values of `key` on the training lines of `run`'s metrics.
fn train_series(run: &Path, key: &str) -> Vec<f64> {
    curve(run)
        .iter()
        .filter(|v| v["split"] == "train")
        .map(|v| v[key].as_f64().unwrap())
        .collect()
}

/// The training losses TensorBoard shows for `run`, checked against its
/// `metrics.jsonl`.
fn tensorboard_losses(run: &Path) -> Vec<(i64, f32)> {
    let losses: Vec<(i64, f32)> = read_run(&run.join("tensorboard"))
        .unwrap()
        .into_iter()
        .filter(|(tag, _, _)| tag == "train/loss")
        .map(|(_, step, v)| (step, v))
        .collect();
    let logged: Vec<(i64, f32)> = curve(run)
        .iter()
        .filter(|v| v["split"] == "train")
        .map(|v| {
            (
                v["step"].as_i64().unwrap(),
                v["loss"].as_f64().unwrap() as f32,
            )
        })
        .collect();
    assert_eq!(losses, logged, "TensorBoard and metrics.jsonl differ");
    losses
}

/// The adapter values of a run's last checkpoint.
fn adapter_values(run: &Path) -> Vec<f32> {
    let bytes = std::fs::read(last_checkpoint(run).join("adapter_model.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = file.names().into_iter().map(String::from).collect();
    names.sort();
    names
        .iter()
        .flat_map(|n| {
            file.tensor(n)
                .unwrap()
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn two_workers_train_like_one_with_the_same_global_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    // One worker: 2 micro-batches of 2 rows per step. Two workers: one each.
    let one = alike_recipe(tmp.path(), "one", &data, 2, "");
    let two = alike_recipe(
        tmp.path(),
        "two",
        &data,
        1,
        "[hardware]\ndevices = \"cpu:2\"",
    );
    ok(train(&one, &[]));
    ok(train(&two, &[]));
    assert_trained_alike(&tmp.path().join("one"), &tmp.path().join("two"));
}

#[test]
fn two_workers_draw_the_dropout_masks_of_one() {
    // Micro-batch j of a step draws the same masks whichever worker runs it.
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let with_dropout = |name: &str, grad_accum: u32, extra: &str| {
        let path = accumulating_recipe(tmp.path(), name, &data, grad_accum, extra);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("dropout = 0.1"), "{text}");
        path
    };
    // f32 runs the CPU kernels; bf16 the path every other backend takes.
    for precision in ["f32", "bf16"] {
        let hardware = format!("[hardware]\nprecision = \"{precision}\"");
        let one = with_dropout(&format!("one-{precision}"), 2, &hardware);
        let two = format!("{hardware}\ndevices = \"cpu:2\"");
        let two = with_dropout(&format!("two-{precision}"), 1, &two);
        ok(train(&one, &[]));
        ok(train(&two, &[]));
        let run = |name: &str| tmp.path().join(format!("{name}-{precision}"));
        assert_trained_alike(&run("one"), &run("two"));
    }
}

#[test]
fn bf16_mixed_precision_trains_like_f32_within_bf16_rounding() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let full = alike_recipe(tmp.path(), "f32", &data, 2, "");
    let mixed = alike_recipe(
        tmp.path(),
        "bf16",
        &data,
        2,
        "[hardware]\nprecision = \"bf16\"",
    );
    ok(train(&full, &[]));
    ok(train(&mixed, &[]));
    for key in ["loss", "grad_norm"] {
        let series = |run: &str| train_series(&tmp.path().join(run), key);
        let (a, b) = (series("f32"), series("bf16"));
        assert!(a.iter().filter(|&&v| v > 0.0).count() >= 2, "{key}: {a:?}");
        // bf16 keeps about 3 significant digits; the loss is computed in f32
        // from bf16 activations.
        for (x, y) in a.iter().zip(&b) {
            assert!(
                (x - y).abs() <= 1e-2 * x.abs(),
                "{key}: f32 {x} vs bf16 {y}"
            );
        }
        assert_ne!(a, b, "{key}: bf16 gave f32's values exactly");
    }
    // The weights (here the adapter) stay f32: mixed, not pure, bf16.
    let checkpoint = last_checkpoint(&tmp.path().join("bf16"));
    let bytes = std::fs::read(checkpoint.join("adapter_model.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    for (name, view) in file.tensors() {
        assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
    }
}

/// A free TCP port on the loopback interface, never the same twice in this
/// process. Asking the kernel for port 0 and closing it can hand the same
/// port to two tests running at once (or to a connection's source port
/// before a node binds it); a node of one test then talks to another's.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    // Below Linux's ephemeral range (32768–60999), apart per test process.
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 500) as u16 * 20;
    loop {
        let port = base.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed));
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Held by each multi-node run: two at once on 2 cores starve each other's
/// exchanges of time.
static MULTI_NODE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A child process killed when the test ends, passing or not.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `clintune orchestrator` on the loopback interface; returns it
/// (stopped when dropped) and its address.
fn start_orchestrator() -> (Child, String) {
    let port = free_port().to_string();
    let child = clintune_command(&["orchestrator", "--port", &port])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    (Child(child), format!("ws://127.0.0.1:{port}"))
}

/// Starts an orchestrator and one `clintune train` per `(recipe, extra
/// args)`, one node each, on the loopback interface, and returns each
/// node's output once all have ended.
fn train_on_nodes(tmp: &Path, nodes: &[(&Path, &[&str])]) -> Vec<std::process::Output> {
    let (_orchestrator, address) = start_orchestrator();
    train_on_nodes_with(tmp, &address, nodes)
}

/// [`train_on_nodes`] with the orchestrator at `orchestrator`.
fn train_on_nodes_with(
    tmp: &Path,
    orchestrator: &str,
    nodes: &[(&Path, &[&str])],
) -> Vec<std::process::Output> {
    let _alone = MULTI_NODE.lock().unwrap_or_else(|e| e.into_inner());
    let children: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(rank, (recipe, extra))| {
            let (rank, node) = (rank.to_string(), format!("ws://127.0.0.1:{}", free_port()));
            let mut args = vec!["train", recipe.to_str().unwrap(), "--node-rank", &rank];
            args.extend(["--orchestrator", orchestrator, "--node-address", &node]);
            args.extend_from_slice(extra);
            // Files, not pipes: a full pipe would stall a node.
            let log = tmp.join(format!("node{rank}.log"));
            clintune_command(&args)
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(log).unwrap())
                .spawn()
                .unwrap()
        })
        .collect();
    // Nodes that never meet would wait for each other forever.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut children: Vec<_> = children.into_iter().map(Child).collect();
    while children
        .iter_mut()
        .any(|c| c.0.try_wait().unwrap().is_none())
    {
        assert!(
            Instant::now() < deadline,
            "the nodes did not finish in 2 minutes: {}",
            (0..nodes.len())
                .map(|rank| {
                    let log = std::fs::read(tmp.join(format!("node{rank}.log")));
                    format!(
                        "--- node {rank} ---\n{}",
                        String::from_utf8_lossy(&log.unwrap_or_default())
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    children
        .into_iter()
        .enumerate()
        .map(|(rank, mut c)| std::process::Output {
            status: c.0.wait().unwrap(),
            stdout: Vec::new(),
            stderr: std::fs::read(tmp.join(format!("node{rank}.log"))).unwrap(),
        })
        .collect()
}

#[test]
fn two_nodes_on_loopback_train_like_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let one = alike_recipe(tmp.path(), "one", &data, 2, "");
    let nodes = alike_recipe(tmp.path(), "nodes", &data, 1, "[hardware]\nnodes = 2");
    ok(train(&one, &[]));
    all_ok(train_on_nodes(tmp.path(), &[(&nodes, &[]), (&nodes, &[])]));
    let run = tmp.path().join("nodes");
    assert_trained_alike(&tmp.path().join("one"), &run);
    // Only node 0 wrote: one line per logged step, one manifest that
    // verifies.
    assert_eq!(curve(&run).len(), curve(&tmp.path().join("one")).len());
    ok(clintune(&["lineage", "verify", &s(&run)], None));
}

#[test]
fn two_nodes_of_two_devices_train_like_one_process() {
    // Gradients are summed within each node first, then between nodes.
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let one = alike_recipe(tmp.path(), "one", &data, 4, "");
    let nodes = alike_recipe(
        tmp.path(),
        "nodes",
        &data,
        1,
        "[hardware]\nnodes = 2\ndevices = \"cpu:2\"",
    );
    ok(train(&one, &[]));
    all_ok(train_on_nodes(tmp.path(), &[(&nodes, &[]), (&nodes, &[])]));
    assert_trained_alike(&tmp.path().join("one"), &tmp.path().join("nodes"));
}

#[test]
fn a_multi_node_run_says_what_it_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let nodes = recipe(
        tmp.path(),
        "nodes",
        &tmp.path().join("none"),
        3,
        "[hardware]\nnodes = 2",
    );
    let nodes = nodes.to_str().unwrap();
    let orchestrator = ["--orchestrator", "ws://127.0.0.1:9"];
    // (arguments, an environment variable, what the error must mention)
    type Case<'a> = (&'a [&'a str], Option<(&'a str, &'a str)>, &'a str);
    let cases: [Case; 5] = [
        (&["train", nodes], None, "--node-rank"),
        (
            &["train", nodes, "--node-rank", "1"],
            None,
            "--orchestrator",
        ),
        (
            &[
                "train",
                nodes,
                "--node-rank",
                "2",
                orchestrator[0],
                orchestrator[1],
            ],
            None,
            "ranks are 0 to 1",
        ),
        (
            &["train", nodes, orchestrator[0], orchestrator[1]],
            Some(("SLURM_NNODES", "3")),
            "SLURM_NNODES",
        ),
        (
            &["train", nodes, orchestrator[0], "head:3030"],
            Some(("SLURM_NODEID", "0")),
            "ws://HOST:PORT",
        ),
    ];
    for (args, env, want) in cases {
        let mut cmd = clintune_command(args);
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(want),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn a_node_waiting_for_a_missing_node_gives_up_after_the_exchange_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let nodes = alike_recipe(
        tmp.path(),
        "nodes",
        &data,
        1,
        "[hardware]\nnodes = 2\nexchange_timeout_s = 2",
    );
    // Node 1 never starts.
    let [out] = train_on_nodes(tmp.path(), &[(&nodes, &[])])
        .try_into()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("their registration") && err.contains("exchange_timeout_s"),
        "{err}"
    );
}

#[test]
fn an_orchestrator_forgets_the_nodes_of_a_failed_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let text = "[hardware]\nnodes = 2\nexchange_timeout_s = 2";
    let nodes = alike_recipe(tmp.path(), "nodes", &data, 1, text);
    let (_orchestrator, address) = start_orchestrator();
    // Node 0 registers, waits for node 1, and is ended by its watchdog.
    let [out] = train_on_nodes_with(tmp.path(), &address, &[(&nodes, &[])])
        .try_into()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    // The same orchestrator then serves a whole run (with room for one node
    // to start later than the other on a busy machine).
    let patient = tmp.path().join("patient.toml");
    let text = std::fs::read_to_string(&nodes).unwrap();
    std::fs::write(
        &patient,
        text.replace("exchange_timeout_s = 2", "exchange_timeout_s = 600"),
    )
    .unwrap();
    all_ok(train_on_nodes_with(
        tmp.path(),
        &address,
        &[(&patient, &[]), (&patient, &[])],
    ));
    assert!(last_checkpoint(&tmp.path().join("nodes")).ends_with("step-00000003"));
}

#[test]
fn a_node_whose_peer_leaves_mid_run_stops_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let nodes = alike_recipe(tmp.path(), "nodes", &data, 1, "[hardware]\nnodes = 2");
    // Node 1 stops after one step; node 0 goes on to exchange the second.
    let [stays, leaves] = train_on_nodes(
        tmp.path(),
        &[(&nodes, &[]), (&nodes, &["--stop-after", "1"])],
    )
    .try_into()
    .unwrap();
    ok(leaves);
    assert!(!stays.status.success());
    let err = String::from_utf8_lossy(&stays.stderr);
    assert!(
        err.contains("data-parallel exchange failed") && err.contains("PeerLost"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "an error, not a panic: {err}");
}

#[test]
fn nodes_that_disagree_on_the_run_stop_together_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let a = alike_recipe(tmp.path(), "a", &data, 1, "[hardware]\nnodes = 2");
    // The same run directory, another seed: a different recipe.
    let text = std::fs::read_to_string(&a).unwrap();
    let b = tmp.path().join("b.toml");
    std::fs::write(&b, text.replace("[train]\n", "[train]\nseed = 7\n")).unwrap();
    for out in train_on_nodes(tmp.path(), &[(&a, &[]), (&b, &[])]) {
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("do not start from the same point"), "{err}");
    }
    // Nothing was written: no checkpoint, no metrics, no event file.
    assert!(!tmp.path().join("a/checkpoints").exists());
    assert!(!tmp.path().join("a/metrics.jsonl").exists());
    assert!(!tmp.path().join("a/tensorboard").exists());
}

/// The recipe of a 3-step run, `grad_accum` micro-batches per worker.
fn accumulating_recipe(
    tmp: &Path,
    name: &str,
    data: &Path,
    grad_accum: u32,
    extra: &str,
) -> PathBuf {
    let path = recipe(tmp, name, data, 3, extra);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("grad_accum = 2", &format!("grad_accum = {grad_accum}"));
    std::fs::write(&path, text).unwrap();
    path
}

/// [`accumulating_recipe`] without dropout: its comparisons test one thing
/// each, and `two_workers_draw_the_dropout_masks_of_one` the masks.
fn alike_recipe(tmp: &Path, name: &str, data: &Path, grad_accum: u32, extra: &str) -> PathBuf {
    let path = accumulating_recipe(tmp, name, data, grad_accum, extra);
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("dropout = 0.1", "dropout = 0.0");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `a` and `b` trained to the same adapter (within float rounding of
/// a differently ordered sum) with the same logged loss and gradient norm.
fn assert_trained_alike(a_run: &Path, b_run: &Path) {
    let (a, b) = (adapter_values(a_run), adapter_values(b_run));
    assert_eq!(a.len(), b.len());
    let scale = a.iter().fold(0f32, |m, x| m.max(x.abs()));
    let diff = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        scale > 0.0 && diff <= 1e-5 * scale,
        "diff {diff}, scale {scale}"
    );
    // AdamW would hide a wrongly scaled gradient; the logged norm does not.
    // (GRPO's loss may be of either sign; the norm shows steps trained.)
    let positive = train_series(a_run, "grad_norm");
    assert!(
        positive.iter().filter(|&&v| v > 0.0).count() >= 2,
        "{positive:?}"
    );
    for key in ["loss", "grad_norm"] {
        let (x, y) = (train_series(a_run, key), train_series(b_run, key));
        assert_eq!(x.len(), 3);
        for (x, y) in x.iter().zip(&y) {
            assert!(
                (x - y).abs() <= 1e-5 * x.abs().max(1e-3),
                "{key}: {x} vs {y}"
            );
        }
    }
}

#[test]
fn a_run_logs_tensorboard_events_and_a_verifiable_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let path = recipe(tmp.path(), "run", &data, 4, "");
    ok(train(&path, &[]));
    let run = tmp.path().join("run");

    let losses = tensorboard_losses(&run);
    assert_eq!(losses.len(), 4);
    let scalars = read_run(&run.join("tensorboard")).unwrap();
    for tag in [
        "train/lr",
        "train/grad_norm",
        "train/tokens_per_s",
        "eval/loss",
        "eval/accuracy",
    ] {
        assert!(scalars.iter().any(|(t, _, _)| t == tag), "{tag}");
    }

    let manifest = read_manifest(&run);
    assert_eq!(manifest["stage"], "train");
    assert_eq!(manifest["parents"][0]["id"], read_manifest(&data)["id"]);
    assert_eq!(manifest["counts"]["steps"], 4);
    assert!(manifest["counts"]["eval_loss"].as_f64().unwrap() > 0.0);
    let kinds: Vec<&str> = manifest["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"recipe") && kinds.contains(&"base-model"));
    ok(clintune(&["lineage", "verify", &s(&run)], None));

    // Tampering with the trained adapter is caught and named.
    let adapter = last_checkpoint(&run).join("adapter_model.safetensors");
    let mut bytes = std::fs::read(&adapter).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&adapter, bytes).unwrap();
    let o = clintune(&["lineage", "verify", &s(&run)], None);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("adapter_model.safetensors"));
}

#[test]
fn recipes_and_inputs_are_checked_with_errors_that_say_where() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let good = recipe(tmp.path(), "good", &data, 2, "");
    let o = clintune(&["recipe", "check", &s(&good)], None);
    let err = ok(o);
    assert!(err.contains("valid"), "{err}");

    let typo = recipe(tmp.path(), "typo", &data, 2, "warmup = 3");
    let o = clintune(&["recipe", "check", &s(&typo)], None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("typo.toml") && err.contains("warmup") && err.contains("line 25"),
        "{err}"
    );

    // A model whose tokenizer is not the one the dataset was encoded with.
    let other = tmp.path().join("other-model");
    std::fs::create_dir_all(&other).unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer_config.json"] {
        std::fs::copy(repo().join(MODEL).join(f), other.join(f)).unwrap();
    }
    std::fs::copy(
        repo().join("tests/fixtures/tokenizer/mistral-7b-v0.1/tokenizer.json"),
        other.join("tokenizer.json"),
    )
    .unwrap();
    let text = std::fs::read_to_string(&good)
        .unwrap()
        .replace(MODEL, &s(&other));
    let mismatched = tmp.path().join("mismatched.toml");
    std::fs::write(&mismatched, text).unwrap();
    let o = train(&mismatched, &[]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("tokenizer"));

    // A directory that is not a curated dataset.
    let text = std::fs::read_to_string(&good)
        .unwrap()
        .replace(&s(&data), &s(&tmp.path().join("deid")));
    let wrong = tmp.path().join("wrong.toml");
    std::fs::write(&wrong, text).unwrap();
    let o = train(&wrong, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("curate") && err.contains("deid"), "{err}");
}

#[test]
fn bench_prints_a_throughput_table_for_a_model_config() {
    let out = clintune(
        &[
            "bench",
            "--model",
            MODEL,
            "--steps",
            "1",
            "--warmup",
            "0",
            "--batch",
            "1",
            "--seq",
            "8",
            "--peak-tflops",
            "1",
        ],
        None,
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = table.lines().last().unwrap();
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    assert_eq!((cells[2], cells[4]), ("full", "1 × 8"), "{row}");
    assert!(cells[10].ends_with('%'), "{row}");
    let tokens_per_s: f64 = cells[8].parse().unwrap();
    assert!(tokens_per_s > 0.0, "{row}");
    let lora = clintune(
        &[
            "bench", "--model", MODEL, "--steps", "1", "--warmup", "0", "--batch", "1", "--seq",
            "8", "--lora", "4", "--format", "json",
        ],
        None,
    );
    let figures: Value = serde_json::from_slice(&lora.stdout).unwrap();
    assert_eq!(figures["lora_rank"], 4, "{figures}");
    assert!(figures["tokens_per_s"].as_f64().unwrap() > 0.0, "{figures}");

    let out = clintune(&["bench", "--model", "no-such-model"], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("small, llama-1b"),
        "{err}"
    );
}

/// The objective table of the DPO runs below.
const DPO: &str = "[objective]\nkind = \"dpo\"\nbeta = 0.1\n";

#[test]
fn dpo_starts_at_log_2_under_a_fresh_adapter_and_resumes_bit_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let whole = recipe(tmp.path(), "dpo-whole", &data, 6, DPO);
    ok(train(&whole, &[]));
    let split = recipe(tmp.path(), "dpo-split", &data, 6, DPO);
    ok(train(&split, &["--stop-after", "3"]));
    ok(train(&split, &["--resume"]));
    same_result(&tmp.path().join("dpo-whole"), &tmp.path().join("dpo-split"));
    // A fresh adapter adds exactly zero: the policy is its reference.
    let lines = curve(&tmp.path().join("dpo-whole"));
    let first = &lines[0];
    assert_eq!(first["loss"], f64::from(std::f32::consts::LN_2), "{first}");
    for figure in ["rewards/chosen", "rewards/rejected", "rewards/margins"] {
        assert_eq!(first[figure], 0.0, "{figure}: {first}");
    }
    assert!(first["logps/chosen"].as_f64().unwrap() < 0.0, "{first}");
    let eval = lines.iter().find(|l| l["split"] == "eval").unwrap();
    for figure in [
        "loss",
        "rewards/accuracies",
        "rewards/margins",
        "logps/rejected",
    ] {
        assert!(eval[figure].is_f64(), "{figure} missing: {eval}");
    }
}

#[test]
fn dpo_on_two_workers_trains_like_one() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let one = alike_recipe(tmp.path(), "dpo-one", &data, 2, DPO);
    let two_workers = format!("{DPO}[hardware]\ndevices = \"cpu:2\"\n");
    let two = alike_recipe(tmp.path(), "dpo-two", &data, 1, &two_workers);
    ok(train(&one, &[]));
    ok(train(&two, &[]));
    assert_trained_alike(&tmp.path().join("dpo-one"), &tmp.path().join("dpo-two"));
}

#[test]
fn dpo_needs_preference_pairs_and_says_how_to_get_them() {
    let tmp = tempfile::tempdir().unwrap();
    let records = tmp.path().join("deid");
    ok(deid(&[&sample().join("chat")], &records, KEY_A, &[]));
    let data = tmp.path().join("curated");
    curate_ok(&[
        "--input",
        &s(&records),
        "--tokenizer",
        MODEL,
        "--out",
        &s(&data),
    ]);
    let r = recipe(tmp.path(), "no-pairs", &data, 2, DPO);
    let o = train(&r, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("holds no preference pairs") && err.contains("train"),
        "{err}"
    );
    let bad = recipe(
        tmp.path(),
        "bad",
        &data,
        2,
        "[objective]\nkind = \"dpo\"\nloss = \"ipo\"\nlabel_smoothing = 0.1\n",
    );
    let o = clintune(&["recipe", "check", &s(&bad)], None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("objective.label_smoothing"),
        "{err}"
    );
}

/// GRPO on the sample's chat and next-diagnosis prompts: short completions
/// of short prompt tails, two graders whose rewards differ within a group.
const GRPO: &str = r#"[objective]
kind = "grpo"
[grpo]
num_generations = 4
max_prompt_length = 48
max_completion_length = 6
[[grader]]
kind = "regex"
pattern = '^\s*[a-m]'
[[grader]]
kind = "diagnosis-f1"
weight = 0.5
"#;

#[test]
fn grpo_resumes_bit_exactly_and_logs_trl_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let whole = recipe(tmp.path(), "grpo-whole", &data, 6, GRPO);
    ok(train(&whole, &[]));
    let split = recipe(tmp.path(), "grpo-split", &data, 6, GRPO);
    ok(train(&split, &["--stop-after", "3"]));
    ok(train(&split, &["--resume"]));
    same_result(
        &tmp.path().join("grpo-whole"),
        &tmp.path().join("grpo-split"),
    );

    let run = tmp.path().join("grpo-whole");
    let lines = curve(&run);
    let train_lines: Vec<&Value> = lines.iter().filter(|l| l["split"] == "train").collect();
    for line in &train_lines {
        for figure in [
            "reward",
            "reward_std",
            "frac_reward_zero_std",
            "completions/mean_length",
            "completions/clipped_ratio",
            "clip_ratio/region_mean",
            "rewards/regex/mean",
            "rewards/regex/std",
            "rewards/diagnosis-f1/mean",
        ] {
            assert!(line[figure].is_f64(), "{figure} missing: {line}");
        }
        // The total is the graders' weighted sum.
        let (total, regex, f1) = (
            line["reward"].as_f64().unwrap(),
            line["rewards/regex/mean"].as_f64().unwrap(),
            line["rewards/diagnosis-f1/mean"].as_f64().unwrap(),
        );
        assert!((total - (regex + 0.5 * f1)).abs() < 1e-9, "{line}");
        let length = line["completions/mean_length"].as_f64().unwrap();
        assert!(length > 0.0 && length <= 6.0, "{line}");
        // Each generation batch is used once: the ratio is 1, never clipped.
        assert_eq!(line["clip_ratio/region_mean"], 0.0, "{line}");
        assert!(line.get("kl").is_none(), "no KL without beta: {line}");
    }
    // Some groups disagreed, so some steps had advantages to learn from.
    let mixed = train_lines
        .iter()
        .filter(|l| l["frac_reward_zero_std"].as_f64().unwrap() < 1.0)
        .count();
    assert!(mixed >= 3, "{train_lines:?}");
    let eval = lines.iter().find(|l| l["split"] == "eval").unwrap();
    assert_eq!(
        eval["loss"].as_f64(),
        eval["reward"].as_f64().map(|r| -r),
        "{eval}"
    );
    let scalars = read_run(&run.join("tensorboard")).unwrap();
    for tag in ["train/reward", "train/rewards/regex/mean", "eval/reward"] {
        assert!(scalars.iter().any(|(t, _, _)| t == tag), "{tag}");
    }
}

#[test]
fn grpo_reuses_a_generation_batch_and_pauses_only_between_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let reused = GRPO.replace(
        "num_generations = 4",
        "num_generations = 4\nnum_iterations = 2",
    );
    let whole = recipe(tmp.path(), "reuse-whole", &data, 6, &reused);
    ok(train(&whole, &[]));
    // --stop-after 3 pauses after step 4, the end of a generation batch.
    let split = recipe(tmp.path(), "reuse-split", &data, 6, &reused);
    ok(train(&split, &["--stop-after", "3"]));
    let paused = last_checkpoint(&tmp.path().join("reuse-split"));
    assert!(paused.ends_with("step-00000004"), "{paused:?}");
    ok(train(&split, &["--resume"]));
    same_result(
        &tmp.path().join("reuse-whole"),
        &tmp.path().join("reuse-split"),
    );
    // Steps 2k+1 and 2k+2 train on the same completions.
    let run = tmp.path().join("reuse-whole");
    let (reward, length) = (
        train_series(&run, "reward"),
        train_series(&run, "completions/mean_length"),
    );
    assert_eq!(reward.len(), 6);
    for k in [0, 2, 4] {
        assert_eq!(reward[k], reward[k + 1], "{reward:?}");
        assert_eq!(length[k], length[k + 1], "{length:?}");
    }
    // (A new batch is new samples: seeded, so this holds or fails for good.)
    assert!(
        reward[0] != reward[2] || reward[2] != reward[4],
        "{reward:?}"
    );
    // Checkpoints fall between generation batches.
    let odd = recipe(
        tmp.path(),
        "reuse-odd",
        &data,
        6,
        &reused.replace("num_iterations = 2", "num_iterations = 3"),
    );
    let o = clintune(&["recipe", "check", &s(&odd)], None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("train.checkpoint_every"),
        "{err}"
    );
}

#[test]
fn grpo_on_two_workers_trains_like_one() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    // Batch scaling and DAPO's denominator need the whole step's rewards and
    // tokens, which each worker only has after the exchange.
    let grpo = GRPO.replace(
        "num_generations = 4",
        "num_generations = 4\nscale_rewards = \"batch\"",
    );
    let one = alike_recipe(tmp.path(), "grpo-one", &data, 2, &grpo);
    let two_workers = format!("{grpo}[hardware]\ndevices = \"cpu:2\"\n");
    let two = alike_recipe(tmp.path(), "grpo-two", &data, 1, &two_workers);
    ok(train(&one, &[]));
    ok(train(&two, &[]));
    let (a, b) = (tmp.path().join("grpo-one"), tmp.path().join("grpo-two"));
    assert_trained_alike(&a, &b);
    // The same completions were sampled and graded, whichever worker did
    // (the workers' sums travel as f32).
    for key in ["reward", "reward_std", "completions/mean_length"] {
        let (x, y) = (train_series(&a, key), train_series(&b, key));
        assert_eq!(x.len(), y.len());
        for (x, y) in x.iter().zip(&y) {
            assert!(
                (x - y).abs() <= 1e-6 * x.abs().max(1.0),
                "{key}: {x} vs {y}"
            );
        }
    }
}

#[test]
fn a_failing_grader_stops_grpo_naming_the_grader_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let garbage = GRPO.replace(
        "[[grader]]\nkind = \"diagnosis-f1\"",
        "[[grader]]\nkind = \"command\"\nargv = [\"sh\", \"-c\", \"cat > /dev/null; r='{\\\"reward\\\": 1}'; echo $r; echo oops; echo $r; echo $r\"]",
    );
    let r = recipe(tmp.path(), "grpo-garbage", &data, 2, &garbage);
    let o = train(&r, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("grader 2 (command `sh`)") && err.contains("line 2"),
        "{err}"
    );
    assert!(!tmp.path().join("grpo-garbage/manifest.json").exists());

    // GRPO's tables are refused where they do not apply.
    let stray = recipe(
        tmp.path(),
        "stray",
        &data,
        2,
        "[[grader]]\nkind = \"exact\"\n",
    );
    let o = clintune(&["recipe", "check", &s(&stray)], None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("objective.kind = \"grpo\""),
        "{err}"
    );
}

#[test]
fn grpo_s_kl_term_starts_at_zero_against_the_base_under_lora_and_full_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let kl = GRPO.replace("num_generations = 4", "num_generations = 4\nbeta = 0.04");
    for (name, method) in [("kl-lora", ""), ("kl-full", "[method]\nkind = \"full\"\n")] {
        let r = recipe(tmp.path(), name, &data, 2, &format!("{kl}{method}"));
        ok(train(&r, &[]));
        // A fresh adapter adds 0, and full weights start as the base: the
        // policy is its reference until the first update.
        let kl = train_series(&tmp.path().join(name), "kl");
        assert_eq!(kl.len(), 2, "{name}");
        assert_eq!(kl[0], 0.0, "{name}: {kl:?}");
        assert!(kl[1] > 0.0, "{name}: {kl:?}");
    }
}
