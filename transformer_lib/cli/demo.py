"""tlib-demo: the finished model at work, untrained, in a few seconds."""

from __future__ import annotations

import argparse
import time

import torch

from ..device import describe, pick_device
from ..model.config import PRESETS, ModelConfig
from ..model.transformer import Transformer, parameter_counts
from . import positive_int


def format_parameter_table(counts: dict[str, int]) -> str:
    """Parameter counts by component as an aligned text table with shares of the total."""
    total = counts["total"]
    lines = [f"{'component':<14}{'parameters':>14}{'share':>8}"]
    for name, count in counts.items():
        if name != "total":
            lines.append(f"{name:<14}{count:>14,}{count / total:>8.1%}")
    lines.append(f"{'total':<14}{total:>14,}{1:>8.0%}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="tlib-demo",
        description="Build a model from a preset, print its architecture and parameter counts, "
                    "then run a forward pass and a short generation (untrained weights).")
    parser.add_argument("--preset", default="seed-22.5M", choices=sorted(PRESETS),
                        help="model configuration (default: seed-22.5M, the original design's)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--seq-len", type=positive_int, default=32,
                        help="tokens in the forward pass (at most the preset's context)")
    parser.add_argument("--new-tokens", type=positive_int, default=16,
                        help="tokens to generate (fewer than the preset's context)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    # Checked before the model is built: a large preset takes seconds and gigabytes.
    config = ModelConfig.from_preset(args.preset)
    context = config.max_seq_len
    if args.seq_len > context:
        parser.error(f"--seq-len {args.seq_len} exceeds the context of preset {args.preset!r} "
                     f"({context} tokens); give at most {context}")
    if args.new_tokens >= context:
        parser.error(f"--new-tokens {args.new_tokens} leaves no room for a prompt in the "
                     f"{context}-token context of preset {args.preset!r}; give at most "
                     f"{context - 1}")
    try:
        device = pick_device(args.device)
    except ValueError as err:
        parser.error(str(err))
    torch.manual_seed(args.seed)
    model = Transformer(config).to(device).eval()
    print(f"preset {args.preset!r} on {describe(device)}")
    print(config)
    print(model)
    print()
    print(format_parameter_table(parameter_counts(model)))

    seq_len = min(args.seq_len, config.max_seq_len - args.new_tokens)
    input_ids = torch.randint(0, config.vocab_size, (1, seq_len), device=device)
    with torch.no_grad():
        start = time.perf_counter()
        logits = model(input_ids)
        elapsed = time.perf_counter() - start
    print(f"\nforward: input {tuple(input_ids.shape)} -> logits {tuple(logits.shape)} "
          f"in {elapsed * 1000:.0f} ms")
    start = time.perf_counter()
    generated = model.generate(input_ids[:, :8], max_new_tokens=args.new_tokens, temperature=0)
    elapsed = time.perf_counter() - start
    print(f"generate: {args.new_tokens} new tokens in {elapsed * 1000:.0f} ms (greedy, KV cache)")
    print(f"token ids: {generated[0].tolist()}")
    print("(the weights are random, so the ids are too: train with tlib-train)")


if __name__ == "__main__":
    main()
