#!/usr/bin/env python3
"""clintune's training steps beside PyTorch eager, same config, batch and threads.

For each shape (the quickstart's model, the `small` preset and SmolLM2-135M's) and each method
(all weights, and LoRA rank 8 on q, k, v, o), this times a whole training step
(forward, backward, AdamW) of a randomly initialised model twice:

  * `clintune bench --format json` (the release build) with RAYON_NUM_THREADS=N;
  * transformers' LlamaForCausalLM in PyTorch eager mode with
    torch.set_num_threads(N), with eager and with sdpa attention, LoRA through
    PEFT (same rank, alpha and dropout), AdamW from torch.optim.

and prints one table with tokens/s and clintune's ratio to the faster PyTorch
attention.

    python3 benches/model_vs_torch.py [--threads N] [--steps 5] [--only SHAPE] [--lora-only]

Needs torch, transformers and peft (`pip install torch transformers peft`);
without them it prints clintune's figures alone. Nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The model `clintune run recipes/quickstart.toml` initialises (its vocabulary
# is the tokenizer curation trains on the sample), as its config.json says.
QUICKSTART = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": 1917,
    "hidden_size": 256,
    "intermediate_size": 704,
    "num_hidden_layers": 4,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "max_position_embeddings": 1024,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "hidden_act": "silu",
    "tie_word_embeddings": False,
    "eos_token_id": 0,
}

# SmolLM2-135M's shape (its config.json): a real small model a partner would
# bring (random weights here: the Hub cannot be reached, and speed does not
# depend on the values).
SMOLLM2_135M = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": 49152,
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5,
    "rope_theta": 100000.0,
    "hidden_act": "silu",
    "tie_word_embeddings": True,
    "eos_token_id": 2,
}

# name -> (model argument, batch, seq); a dict is written to a config file.
SHAPES = {
    "quickstart": (QUICKSTART, 4, 512),
    "small": ("small", 4, 256),
    "smollm2-135m": (SMOLLM2_135M, 2, 256),
}
LORA_RANK = 8
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


def clintune_binary() -> Path:
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    meta = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )
    return Path(json.loads(meta.stdout)["target_directory"]) / "release" / "clintune"


def clintune_figures(binary: Path, model: str, batch: int, seq: int, lora: bool,
                     threads: int, steps: int) -> dict:
    args = [str(binary), "bench", "--model", model, "--batch", str(batch), "--seq", str(seq),
            "--steps", str(steps), "--warmup", "2", "--format", "json", "-q"]
    if lora:
        args += ["--lora", str(LORA_RANK)]
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    out = subprocess.run(args, cwd=ROOT, check=True, env=env, capture_output=True, text=True)
    return json.loads(out.stdout)


def torch_tokens_per_s(config: dict, batch: int, seq: int, lora: bool, attn: str,
                       threads: int, steps: int) -> float:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = LlamaConfig(**{k: v for k, v in config.items() if k != "architectures"})
    cfg._attn_implementation = attn
    model = LlamaForCausalLM(cfg).float()
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(
            r=LORA_RANK, lora_alpha=2 * LORA_RANK, lora_dropout=0.05, target_modules=TARGETS,
        ))
    model.train()
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    ids = torch.randint(0, cfg.vocab_size, (batch, seq))

    def step():
        optim.zero_grad(set_to_none=True)
        model(input_ids=ids, labels=ids).loss.backward()
        optim.step()

    for _ in range(2):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return batch * seq / statistics.mean(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--only", choices=sorted(SHAPES))
    parser.add_argument("--lora-only", action="store_true", help="time LoRA steps only")
    args = parser.parse_args()
    try:
        import torch  # noqa: F401
        import peft  # noqa: F401
        import transformers  # noqa: F401
        have_torch = True
    except ImportError:
        print("torch, transformers or peft not installed: clintune's figures only", file=sys.stderr)
        have_torch = False
    binary = clintune_binary()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (model, batch, seq) in SHAPES.items():
            if args.only and name != args.only:
                continue
            if isinstance(model, dict):
                config = Path(tmp) / f"{name}.json"
                config.write_text(json.dumps(model))
                model = str(config)
            for lora in (False, True):
                if args.lora_only and not lora:
                    continue
                ours = clintune_figures(binary, model, batch, seq, lora,
                                        args.threads, args.steps)
                theirs = {}
                if have_torch:
                    for attn in ("eager", "sdpa"):
                        theirs[attn] = torch_tokens_per_s(ours["config"], batch, seq, lora, attn,
                                                          args.threads, args.steps)
                rows.append((name, batch, seq, lora, ours, theirs))
    version = f"PyTorch {__import__('torch').__version__}" if have_torch else "PyTorch"
    print(f"\nTraining steps (forward, backward, AdamW), f32, CPU, {args.threads} threads, "
          f"mean of {args.steps} steps after 2 untimed\n")
    print(f"| shape | method | batch × seq | clintune tokens/s | {version} eager | sdpa | ratio |")
    print("|---|---|---|---:|---:|---:|---:|")
    for name, batch, seq, lora, ours, theirs in rows:
        method = f"LoRA r{LORA_RANK}" if lora else "full"
        best = max(theirs.values()) if theirs else None
        ratio = f"{ours['tokens_per_s'] / best:.2f}x" if best else "-"
        cells = [f"{theirs[a]:.0f}" if a in theirs else "-" for a in ("eager", "sdpa")]
        print(f"| {name} | {method} | {batch} × {seq} | {ours['tokens_per_s']:.0f} | "
              f"{cells[0]} | {cells[1]} | {ratio} |")
    print("\nratio: clintune / the faster PyTorch attention (goal >= 0.9x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
