#!/usr/bin/env python3
"""PyTorch's side of the GPU check's speed step: the shape `clintune bench` timed.

transformers' LlamaForCausalLM from the same config.json, random weights, random tokens,
full fine-tuning steps (forward, backward, AdamW), in eager mode or under torch.compile,
sdpa attention, bf16 autocast when --precision bf16. Prints one JSON line: tokens/s,
seconds per step and the most GPU memory PyTorch allocated. Exits with status 3 (and a line saying why) when
PyTorch or transformers is missing, so the check reports "not run".
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True, help="the config.json clintune bench used")
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--seq", type=int, required=True)
    ap.add_argument("--precision", choices=["f32", "bf16"], default="f32")
    ap.add_argument("--mode", choices=["eager", "compile"], default="eager")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()
    try:
        import torch
        from transformers import AutoModelForCausalLM, LlamaConfig
    except ImportError as e:
        print(f"PyTorch or transformers is not installed here ({e.name})")
        return 3
    if args.device == "cuda" and not torch.cuda.is_available():
        print("PyTorch sees no CUDA device")
        return 3

    with open(args.config) as f:
        config = LlamaConfig(**json.load(f))
    torch.manual_seed(0)
    device = torch.device(args.device)
    # f32 master weights whatever the config's dtype says, as clintune keeps
    # them; bf16 comes from autocast.
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")
    model = model.float().to(device)
    model.train()
    optim = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ids = torch.randint(0, config.vocab_size, (args.batch, args.seq), device=device)
    autocast = torch.autocast(
        device_type=device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16"
    )
    forward = torch.compile(model) if args.mode == "compile" else model

    def step():
        with autocast:
            loss = forward(input_ids=ids, labels=ids).loss
        loss.backward()
        optim.step()
        optim.zero_grad(set_to_none=True)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    seconds = (time.perf_counter() - started) / args.steps
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    print(json.dumps({
        "framework": f"torch {torch.__version__}",
        "mode": args.mode,
        "step_seconds": seconds,
        "tokens_per_s": args.batch * args.seq / seconds,
        "allocated_peak_mib": peak,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
