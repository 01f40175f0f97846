"""What the hand-written backwards (RMSNorm, RoPE, the SwiGLU gate) buy in a training step.

Times forward + backward + AdamW of one model twice, interleaved step by step: once as the
library runs it (the hand-written ``autograd.Function`` backwards) and once with the textbook
expressions differentiated by autograd. Prints the median step time of each and their ratio.

Run: ``python benchmarks/bench_custom_backward.py [--threads 1] [--repeats 15]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from transformer_lib import ModelConfig, Transformer
from transformer_lib.model import rmsnorm, rope, swiglu


@contextmanager
def plain_expressions():
    """Route the three fast functions to their textbook expressions (autograd differentiates)."""
    saved = (rmsnorm._RMSNormFunction.apply, rope._RotateFunction.apply,
             swiglu._SiluMulFunction.apply)

    def plain_rotation(x, cos_half, sin_half):
        cos, sin = torch.cat([cos_half, cos_half], -1), torch.cat([sin_half, sin_half], -1)
        return rope.apply_rope_reference(x, cos, sin)

    # The Function also returns the inverse RMS it keeps for backward; rms_norm takes [0].
    rmsnorm._RMSNormFunction.apply = lambda x, w, eps: (rmsnorm.rms_norm_reference(x, w, eps),)
    rope._RotateFunction.apply = plain_rotation
    swiglu._SiluMulFunction.apply = lambda gate, up: F.silu(gate) * up
    try:
        yield
    finally:
        (rmsnorm._RMSNormFunction.apply, rope._RotateFunction.apply,
         swiglu._SiluMulFunction.apply) = saved


def step_time(model, optimizer, ids, precision: str) -> float:
    start = time.perf_counter()
    with torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):
        logits = model(ids[:, :-1], check_ids=False)
    loss = F.cross_entropy(logits.flatten(0, 1).float(), ids[:, 1:].flatten())
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="stories15M")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = ModelConfig.from_preset(args.preset, max_seq_len=args.seq_len)
    model = Transformer(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    ids = torch.randint(0, config.vocab_size, (args.batch_size, args.seq_len + 1))
    times = {"hand-written": [], "plain": []}
    for repeat in range(args.warmup + args.repeats):
        for name in times:  # interleaved, so drifts in machine load hit both alike
            if name == "plain":
                with plain_expressions():
                    elapsed = step_time(model, optimizer, ids, args.precision)
            else:
                elapsed = step_time(model, optimizer, ids, args.precision)
            if repeat >= args.warmup:
                times[name].append(elapsed)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"{args.preset}, batch {args.batch_size} x {args.seq_len}, {args.precision}, "
          f"{args.threads} thread(s), torch {torch.__version__}, median of {args.repeats} steps:")
    for name, value in medians.items():
        spread = f"{min(times[name]) * 1e3:.0f}-{max(times[name]) * 1e3:.0f}"
        print(f"  {name:<14}{value * 1e3:8.1f} ms per step (range {spread} ms)")
    print(f"  plain / hand-written: {medians['plain'] / medians['hand-written']:.3f}")


if __name__ == "__main__":
    main()
