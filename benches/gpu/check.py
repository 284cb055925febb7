#!/usr/bin/env python3
"""The GPU check's steps, run by check.sh (which finds the CUDA libraries first).

Each step runs clintune on the device under test and, as the reference, on the CPU, and
records pass, fail or "not run" with its figures:

  parity     `score` log-probabilities of the committed fixture models, device vs CPU
  train      20 steps (LoRA and full fine-tuning): loss and gradient-norm curves, device vs CPU
  resume     10 steps, --resume, 10 more == 20 uninterrupted steps, on the device
  speed      `clintune bench` and the same shape in PyTorch (eager and torch.compile)
  parallel   two data-parallel workers == one worker with the same global batch

It ends with one table; results.json, the table and every command's output go to --out.
Python's standard library only: the GPU machine's python3 has PyTorch, this one may not.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests/fixtures/llama"

# Parity tolerances: f32 arithmetic in a different order (GPU reductions) stays far
# under 1e-4 on these small models; bf16 may differ by its own rounding, which the
# fixture's bf16_forward.json measured for transformers.
F32_LOGPROB_TOL = 1e-4
TRAIN_REL_TOL = 1e-3
PARALLEL_REL_TOL = 1e-5


class Check:
    """Runs commands with time limits, keeps their logs, collects results."""

    def __init__(self, args: argparse.Namespace):
        self.bin = args.bin
        self.alt_bin = args.alt_bin
        self.alt_name = args.alt_name
        self.pack = args.pack
        self.device = args.device
        self.out = args.out
        self.work = args.work
        self.log = args.out / "commands.log"
        self.log.write_text("")
        self.deadline = time.monotonic() + args.budget
        self.results: list[dict] = []
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, name: str, argv: list[str], limit: float,
            binary: Path | None = None) -> subprocess.CompletedProcess:
        """Runs clintune (or `binary`) with `argv`; its output goes to out/commands.log."""
        limit = max(1.0, min(limit, self.left()))
        started = time.monotonic()
        try:
            p = subprocess.run(
                [str(binary or self.bin), *argv], capture_output=True, text=True,
                timeout=limit, cwd=ROOT,
            )
        except subprocess.TimeoutExpired as e:
            self.append_log(name, f"$ clintune {' '.join(argv)}\n(timed out after {limit:.0f} s)")
            raise StepFailed(f"{name}: timed out after {limit:.0f} s") from e
        self.append_log(
            name,
            f"$ clintune {' '.join(argv)}\n({time.monotonic() - started:.1f} s, status "
            f"{p.returncode})\n--- stdout\n{p.stdout}\n--- stderr\n{p.stderr}",
        )
        if p.returncode != 0:
            tail = p.stderr.strip().splitlines()[-3:]
            raise StepFailed(f"{name}: status {p.returncode}: {' / '.join(tail)}")
        return p

    def append_log(self, name: str, text: str) -> None:
        with self.log.open("a") as f:
            f.write(f"\n===== {name}\n{text}\n")

    def record(self, check: str, status: str, figures: str, **data) -> None:
        row = {"check": check, "status": status, "figures": figures, **data}
        self.results.append(row)
        print(f"[{status}] {check}: {figures}", flush=True)


class StepFailed(Exception):
    """A command failed or ran out of time; the message says which."""


def step(check: Check, name: str, fn) -> None:
    """Runs one check, turning a failure into a row rather than an abort."""
    if check.left() < 10:
        check.record(name, "not run", "the check's time budget was spent")
        return
    try:
        fn(check)
    except StepFailed as e:
        check.record(name, "fail", str(e))


# --- parity ---------------------------------------------------------------------------


def parity(check: Check) -> None:
    cases = [
        ("llama-gqa-rope3", "f32", F32_LOGPROB_TOL),
        ("tied", "f32", F32_LOGPROB_TOL),
        ("qwen2-bias", "f32", F32_LOGPROB_TOL),
        ("llama-gqa-rope3-bf16", "bf16", bf16_tolerance()),
    ]
    for model, precision, tol in cases:
        golden = json.loads((FIXTURES / model / "golden.json").read_text())
        inputs = check.work / f"{model}.ids"
        rows = golden["inputs"]["input_ids_batch"]
        inputs.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        scores = {}
        for device in ("cpu", check.device):
            p = check.run(
                f"parity-{model}-{device}",
                ["score", "--model", str(FIXTURES / model), "--input", str(inputs),
                 "--device", device, "--precision", precision],
                120,
            )
            scores[device] = [json.loads(line) for line in p.stdout.splitlines()]
        diff = max_logprob_diff(scores["cpu"], scores[check.device])
        status = "pass" if diff <= tol else "fail"
        check.record(
            f"parity {model} ({precision})", status,
            f"max abs. Δ log p {diff:.2e} (limit {tol:.0e})", max_abs_diff=diff, limit=tol,
        )


def bf16_tolerance() -> float:
    info = json.loads((FIXTURES / "llama-gqa-rope3-bf16/bf16_forward.json").read_text())
    return float(info["max_abs_diff_vs_float32_logits"])


def max_logprob_diff(a: list[dict], b: list[dict]) -> float:
    if len(a) != len(b):
        raise StepFailed(f"{len(a)} scored rows on the CPU, {len(b)} on the device")
    worst = 0.0
    for ra, rb in zip(a, b):
        if ra["tokens"] != rb["tokens"]:
            raise StepFailed("the device scored other tokens than the CPU")
        for x, y in zip(ra["logprobs"], rb["logprobs"]):
            if (x is None) != (y is None):
                raise StepFailed("a log-probability is missing on one side")
            if x is not None:
                worst = max(worst, abs(x - y))
    return worst


# --- training -------------------------------------------------------------------------


def recipe(check: Check, name: str, method: str, devices: str, grad_accum: int = 1,
           micro_batch: int = 2, dropout: float = 0.0) -> tuple[Path, Path]:
    """A 20-step recipe on the packed data; returns (recipe, run directory). Without
    dropout unless asked: the step compares the GPU with the CPU, not the masks."""
    out = check.work / "runs" / name
    path = check.work / f"{name}.toml"
    path.write_text(f"""\
[model]
base = "{check.pack / 'base'}"

[data]
dataset = "{check.pack / 'curated'}"
seq_len = 256
micro_batch = {micro_batch}
grad_accum = {grad_accum}

[method]
kind = "{method}"

[lora]
rank = 8
alpha = 16.0
dropout = {dropout}
targets = ["q", "k", "v", "o", "gate", "up", "down"]

[optimizer]
lr = 1e-3

[schedule]
warmup_steps = 2
decay = "cosine"

[train]
max_steps = 20
eval_every = 0
eval_batches = 2
checkpoint_every = 10
output = "{out}"

[hardware]
devices = "{devices}"
exchange_timeout_s = 120   # a hung exchange ends the run instead of the check's budget
""")
    return path, out


def curve(run_dir: Path) -> list[tuple[int, float, float]]:
    """(step, loss, grad_norm) of each training step in metrics.jsonl."""
    rows = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        m = json.loads(line)
        if "grad_norm" in m and "loss" in m:
            rows.append((int(m["step"]), float(m["loss"]), float(m["grad_norm"])))
    return rows


def rel_diff(a: list[tuple[int, float, float]], b: list[tuple[int, float, float]]) -> float:
    if [s for s, _, _ in a] != [s for s, _, _ in b]:
        raise StepFailed(f"steps differ: {len(a)} logged against {len(b)}")
    worst = 0.0
    for (_, la, ga), (_, lb, gb) in zip(a, b):
        for x, y in ((la, lb), (ga, gb)):
            worst = max(worst, abs(x - y) / max(abs(x), 1e-12))
    return worst


def train(check: Check) -> None:
    for method in ("lora", "full"):
        runs = {}
        for role, device in (("reference", "cpu"), ("device", check.device)):
            tag = f"train-{method}-{role}"
            path, out = recipe(check, tag, method, device)
            check.run(tag, ["train", str(path)], 240)
            runs[role] = curve(out)
        ref, dev = runs["reference"], runs["device"]
        if len(ref) != 20:
            raise StepFailed(f"{method}: {len(ref)} steps logged, not 20")
        diff = rel_diff(ref, dev)
        # A step whose rows hold no trained token (a long prompt) logs loss 0.
        first = next((loss for _, loss, _ in dev if loss > 0), 0.0)
        check.record(
            f"train {method}, 20 steps", "pass" if diff <= TRAIN_REL_TOL else "fail",
            f"max rel. Δ loss/grad-norm {diff:.2e} (limit {TRAIN_REL_TOL:.0e}); "
            f"loss {first:.3f} → {dev[-1][1]:.3f}",
            max_rel_diff=diff, curve=dev,
        )


def resume(check: Check) -> None:
    for method in ("lora", "full"):
        whole = check.work / "runs" / f"train-{method}-device"
        if not (whole / "metrics.jsonl").exists():
            check.record(f"resume {method}", "not run", "the 20-step run is missing")
            continue
        tag = f"resume-{method}"
        path, out = recipe(check, tag, method, check.device)
        check.run(f"{tag}-first", ["train", str(path), "--stop-after", "10"], 180)
        check.run(f"{tag}-rest", ["train", str(path), "--resume"], 180)
        a, b = curve(whole), curve(out)
        diff = max(
            (abs(x[i] - y[i]) for x, y in zip(a, b) for i in (1, 2)), default=float("inf")
        )
        exact = len(a) == len(b) == 20 and diff == 0.0
        check.record(
            f"resume {method}, 10 + 10 steps", "pass" if exact else "fail",
            "bit-exact" if exact else f"max abs. Δ {diff:.2e} over {len(b)} steps",
            max_abs_diff=diff,
        )


# --- speed ----------------------------------------------------------------------------


class GpuMemory:
    """Polls nvidia-smi for the most GPU memory in use while a command runs."""

    def __init__(self):
        self.peak_mib = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.poll, daemon=True)

    def poll(self) -> None:
        while not self.stop.is_set():
            try:
                out = subprocess.run(
                    ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                    capture_output=True, text=True, timeout=5,
                ).stdout.split()
                used = max(int(x) for x in out)
                self.peak_mib = max(self.peak_mib or 0, used)
            except (OSError, ValueError, subprocess.SubprocessError):
                return
            self.stop.wait(0.2)

    def __enter__(self):
        if shutil.which("nvidia-smi"):
            self.thread.start()
        return self

    def __exit__(self, *_):
        self.stop.set()


# The GPU shapes to time, largest first: a shape that does not fit in the GPU's memory
# is reported as failed and the next one is timed, so that a ratio still comes back.
GPU_SHAPES = [(4, 2048), (1, 2048)]


def speed(check: Check) -> None:
    on_gpu = check.device.startswith("cuda")
    if on_gpu:
        shapes = [["--model", "llama-1b", "--precision", "bf16", "--batch", str(b), "--seq",
                   str(s), "--peak-tflops", "989", "--steps", "5", "--warmup", "2"]
                  for b, s in GPU_SHAPES]
    else:
        shapes = [["--model", str(check.pack / "base"), "--batch", "2", "--seq", "64",
                   "--steps", "2", "--warmup", "1"]]
    for shape in shapes:
        ours = bench(check, check.bin, "speed clintune", shape)
        if ours is not None:
            break
    else:
        return
    config = check.work / "bench-config.json"
    config.write_text(json.dumps(ours["config"]))
    for mode in ("eager", "compile"):
        torch_speed(check, ours, config, mode)
    if check.alt_bin is not None:
        bench(check, check.alt_bin, f"speed clintune, {check.alt_name}", shape)


def bench(check: Check, binary: Path, name: str, shape: list[str]) -> dict | None:
    """Times `clintune bench` at `shape`; None (and a failed row) if it failed."""
    try:
        with GpuMemory() as mem:
            p = check.run(name, ["bench", "--device", check.device, "--format", "json", *shape],
                          300, binary=binary)
    except StepFailed as e:
        check.record(f"{name} ({' '.join(shape[1:8:2])})", "fail", str(e))
        return None
    ours = json.loads(p.stdout.strip().splitlines()[-1])
    ours["peak_memory_mib"] = mem.peak_mib
    mfu = f", MFU {100 * ours['mfu']:.1f}%" if ours.get("mfu") is not None else ""
    check.record(
        f"{name} ({ours['model']}, {ours['precision']}, {ours['batch']}×{ours['seq']})",
        "measured", f"{ours['tokens_per_s']:.0f} tokens/s{mfu}, peak {fmt_mib(mem.peak_mib)}",
        **ours,
    )
    return ours


def torch_speed(check: Check, ours: dict, config: Path, mode: str) -> None:
    name = f"speed PyTorch {mode}"
    if check.left() < 60:
        check.record(name, "not run", "the check's time budget was spent")
        return
    argv = [sys.executable, str(Path(__file__).with_name("torch_bench.py")),
            "--config", str(config), "--batch", str(ours["batch"]), "--seq", str(ours["seq"]),
            "--precision", ours["precision"], "--mode", mode,
            "--device", "cuda" if check.device.startswith("cuda") else "cpu",
            "--steps", "5" if check.device.startswith("cuda") else "2"]
    try:
        with GpuMemory() as mem:
            p = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT,
                               timeout=max(1.0, min(300, check.left())))
    except subprocess.TimeoutExpired:
        check.record(name, "fail", "timed out")
        return
    check.append_log(f"speed-torch-{mode}", f"$ {' '.join(argv)}\n--- stdout\n{p.stdout}\n"
                     f"--- stderr\n{p.stderr}")
    if p.returncode == 3:
        check.record(name, "not run", p.stdout.strip().splitlines()[-1])
        return
    if p.returncode != 0:
        check.record(name, "fail", " / ".join(p.stderr.strip().splitlines()[-2:]))
        return
    theirs = json.loads(p.stdout.strip().splitlines()[-1])
    ratio = ours["tokens_per_s"] / theirs["tokens_per_s"]
    mfu = ""
    if ours.get("mfu") is not None:
        mfu = f", MFU {100 * ours['mfu'] * theirs['tokens_per_s'] / ours['tokens_per_s']:.1f}%"
    check.record(
        name, "measured",
        f"{theirs['tokens_per_s']:.0f} tokens/s{mfu}, peak {fmt_mib(mem.peak_mib)} "
        f"({fmt_mib(theirs['allocated_peak_mib'])} allocated); clintune is {ratio:.2f}×",
        ratio=ratio, peak_memory_mib=mem.peak_mib, **theirs,
    )


def fmt_mib(mib) -> str:
    return "n/a" if mib is None else f"{mib / 1024:.1f} GiB"


# --- data parallelism -----------------------------------------------------------------


def parallel(check: Check) -> None:
    if check.device == "cpu":
        two, one = "cpu:2", "cpu"
    elif gpu_count() >= 2:
        two, one = "cuda:0,1", "cuda:0"
    else:
        # One GPU: two workers share it, as cpu:2 shares the CPU.
        two, one = "cuda:0,0", "cuda:0"
    # With dropout: each micro-batch must draw the same masks whichever worker runs it.
    p_two, out_two = recipe(check, "parallel-two", "lora", two, grad_accum=1, dropout=0.1)
    p_one, out_one = recipe(check, "parallel-one", "lora", one, grad_accum=2, dropout=0.1)
    check.run("parallel-two", ["train", str(p_two)], 240)
    check.run("parallel-one", ["train", str(p_one)], 240)
    diff = rel_diff(curve(out_one), curve(out_two))
    check.record(
        f"data parallel, {two} vs {one}", "pass" if diff <= PARALLEL_REL_TOL else "fail",
        f"max rel. Δ loss/grad-norm {diff:.2e} (limit {PARALLEL_REL_TOL:.0e})",
        max_rel_diff=diff,
    )


def gpu_count() -> int:
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10)
        return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))
    except (OSError, subprocess.SubprocessError):
        return 0


# --- report ---------------------------------------------------------------------------


def table(results: list[dict], device: str) -> str:
    lines = [f"GPU check on {device}", "", "| check | result | figures |", "|---|---|---|"]
    for r in results:
        lines.append(f"| {r['check']} | {r['status']} | {r['figures']} |")
    failed = sum(r["status"] == "fail" for r in results)
    lines += ["", f"{len(results)} checks, {failed} failed"]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", type=Path, required=True, help="the clintune to check")
    ap.add_argument("--alt-bin", type=Path,
                    help="a second clintune (another build) whose speed is also timed")
    ap.add_argument("--alt-name", default="second build", help="what --alt-bin's build is")
    ap.add_argument("--pack", type=Path, required=True, help="pack.sh's folder (data, model)")
    ap.add_argument("--device", default="cuda:0", help="cuda:N, or cpu to try the script")
    ap.add_argument("--out", type=Path, required=True,
                    help="results.json, table.md, commands.log (few files: the device tool "
                    "returns at most 8)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/clintune-gpu-check/work"),
                    help="recipes and training runs (emptied first)")
    ap.add_argument("--budget", type=float, default=420, help="seconds for all steps")
    ap.add_argument("--only", nargs="*", help="run only these checks")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    check = Check(args)
    steps = {"parity": parity, "train": train, "resume": resume, "speed": speed,
             "parallel": parallel}
    for name, fn in steps.items():
        if args.only and name not in args.only:
            continue
        step(check, name, fn)
    report = table(check.results, args.device)
    (args.out / "results.json").write_text(json.dumps(check.results, indent=1) + "\n")
    (args.out / "table.md").write_text(report + "\n")
    print("\n" + report)
    return 1 if any(r["status"] == "fail" for r in check.results) else 0


if __name__ == "__main__":
    sys.exit(main())
