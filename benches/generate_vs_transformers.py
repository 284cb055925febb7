#!/usr/bin/env python3
"""Greedy generation tokens/s: clintune beside transformers, same model, prompt and threads.

A randomly initialised model of a real small model's shape (SmolLM2-135M by default:
Llama, 30 layers, hidden 576, 9 query and 3 key/value heads, tied 49,152-token
embeddings) is saved by transformers in a temporary directory with a word-level
tokenizer of the same vocabulary size (the real tokenizer cannot be downloaded; the
tokenizer does not take part in the timing: prompts are given as ids). Then, with the
same thread count:

  * `clintune generate --prompt-ids ... --temperature 0 --format json` (the release
    build, RAYON_NUM_THREADS=N) reports its decode tokens/s (after the prompt);
  * transformers' `model.generate(do_sample=False)` in PyTorch eager mode, sdpa
    attention, torch.set_num_threads(N): the time of prompt + K new tokens minus the
    time of prompt + 1 token, over K - 1 tokens, median of --repeats runs.

The new ids of both are compared (a random model's greedy path is fragile, so a
difference is reported rather than fatal) and one table is printed.

    python3 benches/generate_vs_transformers.py [--threads N] [--new-tokens 128] [--prompt 64]

Needs torch and transformers. Nothing here runs in CI.
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
    "bos_token_id": None,
    "eos_token_id": None,
}


def clintune_binary() -> Path:
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    meta = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )
    return Path(json.loads(meta.stdout)["target_directory"]) / "release" / "clintune"


def save_model(dir: Path, config: dict) -> None:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(**{k: v for k, v in config.items() if k != "architectures"})
    LlamaForCausalLM(cfg).float().save_pretrained(dir)
    # No end-of-sequence anywhere: both sides generate exactly K tokens.
    (dir / "generation_config.json").unlink(missing_ok=True)
    vocab = {f"w{i}": i for i in range(cfg.vocab_size)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(dir / "tokenizer.json"))


def clintune_run(binary: Path, dir: Path, prompt: list[int], new: int, threads: int) -> dict:
    args = [str(binary), "generate", "-m", str(dir), "--prompt-ids", json.dumps(prompt),
            "--max-new-tokens", str(new), "--temperature", "0", "--format", "json"]
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads), RUST_LOG="warn")
    out = subprocess.run(args, check=True, env=env, capture_output=True, text=True)
    return json.loads(out.stdout)


def transformers_run(dir: Path, prompt: list[int], new: int, threads: int,
                     repeats: int) -> tuple[float, list[int]]:
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(dir, dtype=torch.float32,
                                                 attn_implementation="sdpa").eval()
    ids = torch.tensor([prompt])

    def timed(k: int) -> tuple[float, list[int]]:
        start = time.perf_counter()
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=k, min_new_tokens=k, do_sample=False,
                                 eos_token_id=None, pad_token_id=0)
        return time.perf_counter() - start, out[0, len(prompt):].tolist()

    timed(4)  # warm up
    one = statistics.median(timed(1)[0] for _ in range(repeats))
    runs = [timed(new) for _ in range(repeats)]
    whole = statistics.median(t for t, _ in runs)
    return (new - 1) / (whole - one), runs[0][1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--prompt", type=int, default=64, help="prompt length in tokens")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import torch
    import transformers

    binary = clintune_binary()
    prompt = [(17 * i + 5) % SMOLLM2_135M["vocab_size"] for i in range(args.prompt)]
    with tempfile.TemporaryDirectory() as tmp:
        dir = Path(tmp)
        save_model(dir, SMOLLM2_135M)
        ours = [clintune_run(binary, dir, prompt, args.new_tokens, args.threads)
                for _ in range(args.repeats)]
        theirs, their_ids = transformers_run(dir, prompt, args.new_tokens, args.threads,
                                             args.repeats)
    ours_tps = statistics.median(o["decode_tokens_per_s"] for o in ours)
    same = ours[0]["tokens"] == their_ids
    print(f"\nGreedy generation, SmolLM2-135M shape (random weights), f32, CPU, "
          f"{args.threads} threads, prompt {args.prompt} tokens, {args.new_tokens} new, "
          f"median of {args.repeats}\n")
    print(f"| clintune tokens/s | transformers {transformers.__version__} "
          f"(torch {torch.__version__}, sdpa) tokens/s | ratio | same ids |")
    print("|---:|---:|---:|---|")
    print(f"| {ours_tps:.1f} | {theirs:.1f} | {ours_tps / theirs:.2f}x | {'yes' if same else 'no'} |")
    print("\nratio: clintune / transformers (goal >= 1.0x); decode only, the prompt excluded")
    return 0


if __name__ == "__main__":
    sys.exit(main())
