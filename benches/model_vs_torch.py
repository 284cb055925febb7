#!/usr/bin/env python3
"""clintune's burn decoder beside PyTorch eager, same config, batch and threads.

Runs `cargo bench --bench model` (criterion) with RAYON_NUM_THREADS=N, then
the same model config (read from the config.json the bench writes) through
transformers' LlamaForCausalLM in PyTorch eager mode with
torch.set_num_threads(N), and prints tokens/s of a forward+backward pass and
of a forward pass for each, with clintune's ratio to the faster PyTorch
attention (eager or sdpa).

    python3 benches/model_vs_torch.py [--threads N] [--skip-rust]

Needs torch and transformers (`pip install torch transformers`); without them
it prints clintune's figures alone. Nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def target_dir() -> Path:
    meta = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )
    return Path(json.loads(meta.stdout)["target_directory"])


def rust_figures(threads: int, skip: bool) -> dict:
    criterion = target_dir() / "criterion"
    if not skip:
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
        subprocess.run(
            ["cargo", "bench", "--bench", "model", "--", "--noplot"],
            cwd=ROOT, check=True, env=env,
        )
    setup = criterion / "model-bench"
    shape = json.loads((setup / "shape.json").read_text())
    tokens = shape["batch"] * shape["seq"]
    out = {"setup": setup, "shape": shape}
    for name in ("fwd_bwd", "forward"):
        est = json.loads((criterion / "model" / name / "new" / "estimates.json").read_text())
        seconds = est["mean"]["point_estimate"] / 1e9
        out[name] = tokens / seconds
    return out


def torch_figures(setup: Path, shape: dict, threads: int, attn: str) -> dict | None:
    try:
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM
    except ImportError:
        return None
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = LlamaConfig.from_pretrained(setup)
    model = LlamaForCausalLM(config).float()
    model.config._attn_implementation = attn
    b, s = shape["batch"], shape["seq"]
    ids = torch.randint(0, config.vocab_size, (b, s))
    tokens = b * s

    def fwd_bwd():
        model.zero_grad(set_to_none=True)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()

    def forward():
        with torch.no_grad():
            model(input_ids=ids)

    out = {}
    for name, step in (("fwd_bwd", fwd_bwd), ("forward", forward)):
        model.train(name == "fwd_bwd")
        for _ in range(3):
            step()
        times = []
        for _ in range(10):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        out[name] = tokens / statistics.mean(times)
    out["version"] = torch.__version__
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--skip-rust", action="store_true",
                        help="reuse the last criterion results")
    args = parser.parse_args()
    rust = rust_figures(args.threads, args.skip_rust)
    rows = [("clintune (burn Flex)", rust)]
    for attn in ("eager", "sdpa"):
        figures = torch_figures(rust["setup"], rust["shape"], args.threads, attn)
        if figures is None:
            print("torch/transformers not installed: clintune's figures only", file=sys.stderr)
            break
        rows.append((f"PyTorch {figures['version']} ({attn} attention)", figures))
    shape = rust["shape"]
    print(f"\nbatch {shape['batch']} x {shape['seq']} tokens, {args.threads} threads, f32, CPU\n")
    print(f"| implementation | fwd+bwd tokens/s | forward tokens/s |")
    print(f"|---|---:|---:|")
    for name, fig in rows:
        print(f"| {name} | {fig['fwd_bwd']:.0f} | {fig['forward']:.0f} |")
    if len(rows) > 1:
        best = {k: max(fig[k] for _, fig in rows[1:]) for k in ("fwd_bwd", "forward")}
        print(
            f"\nclintune / fastest PyTorch: fwd+bwd {rust['fwd_bwd'] / best['fwd_bwd']:.2f}x, "
            f"forward {rust['forward'] / best['forward']:.2f}x (goal >= 1.0x)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
