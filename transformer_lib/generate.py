"""python -m transformer_lib.generate: continue a prompt with a trained checkpoint."""

from __future__ import annotations

import argparse
import sys

import torch

from . import checkpoint as ckpt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m transformer_lib.generate",
        description="Sample a continuation of --prompt from a checkpoint (with the KV cache).")
    parser.add_argument("--checkpoint", required=True, help="run directory or step_* checkpoint")
    parser.add_argument("--prompt", default="Once upon a time")
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--num-samples", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    from .evaluate import load_checkpoint_and_tokenizer

    try:
        model, tokenizer, _ = load_checkpoint_and_tokenizer(args.checkpoint, args.device)
    except (ckpt.CheckpointError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    device = model.embed_tokens.weight.device
    prompt = [tokenizer.eot_id] + tokenizer.encode(args.prompt)  # a story starts after eot
    room = model.config.max_seq_len - len(prompt)
    if room <= 0:
        print(f"error: the prompt has {len(prompt)} tokens; the model's context is "
              f"{model.config.max_seq_len}", file=sys.stderr)
        return 2
    new_tokens = min(args.max_new_tokens, room)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    try:
        for i in range(args.num_samples):
            out = model.generate(torch.tensor(prompt, device=device), new_tokens,
                                 temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                                 eos_id=tokenizer.eot_id, generator=generator)
            ids = [t for t in out[1:].tolist() if t != tokenizer.eot_id]
            if args.num_samples > 1:
                print(f"--- sample {i + 1}")
            print(tokenizer.decode(ids))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
