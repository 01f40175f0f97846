"""tlib-generate: continue a prompt with a trained checkpoint.

``--llama2c stories260K`` (or a llama2.c ``.bin`` path) tells a story with one of llama2.c's
models instead; its tokenizer comes from ``--tokenizer`` (default: tok512 for stories260K).
"""

from __future__ import annotations

import argparse
import sys

import torch

from ..training import checkpoint as ckpt
from . import finite_float, positive_int


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tlib-generate",
        description="Sample a continuation of --prompt from a checkpoint (with the KV cache).")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="run directory or step_* checkpoint")
    source.add_argument("--llama2c", metavar="PATH_OR_NAME",
                        help="a llama2.c model: a .bin file or a name such as stories260K "
                             "(read from $LLAMA2C_PATH, else the hub)")
    parser.add_argument("--tokenizer", metavar="PATH_OR_NAME",
                        help="with --llama2c: its tokenizer .bin file or name (default: tok512 "
                             "for stories260K; llama2.c's tokenizer.bin for the larger models)")
    parser.add_argument("--prompt", default="Once upon a time")
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--temperature", type=finite_float, default=None,
                        help="0 = greedy (default 0.8; beam search does not sample)")
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--min-p", type=float, default=None,
                        help="keep tokens at least this fraction as likely as the likeliest")
    parser.add_argument("--repetition-penalty", type=finite_float, default=1.0,
                        help="above 1 discourages tokens already in the text (transformers' "
                             "convention)")
    parser.add_argument("--num-beams", type=positive_int, default=1,
                        help="beam search with this many beams (deterministic: give "
                             "--temperature 0 or leave the sampling options unset)")
    parser.add_argument("--length-penalty", type=finite_float, default=1.0,
                        help="with --num-beams: a finished beam's log-probability is divided "
                             "by its length to this power")
    parser.add_argument("--num-samples", type=positive_int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    if args.tokenizer is not None and args.llama2c is None:
        parser.error("--tokenizer goes with --llama2c; a checkpoint brings its own tokenizer")
    try:
        if args.llama2c is not None:
            model, tokenizer = _load_llama2c(args.llama2c, args.tokenizer, args.device)
        else:
            from ..training.checkpoint import load_checkpoint_and_tokenizer

            model, tokenizer, _ = load_checkpoint_and_tokenizer(args.checkpoint, args.device)
    except (ckpt.CheckpointError, FileNotFoundError, ValueError, ConnectionError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    device = model.embed_tokens.weight.device
    # A story starts after eot (llama2.c: BOS); llama2.c's models may also end one with EOS.
    stop_ids = {tokenizer.eot_id, getattr(tokenizer, "eos_id", tokenizer.eot_id)}
    prompt_ids = tokenizer.encode(args.prompt)
    prompt = [tokenizer.eot_id] + prompt_ids
    room = model.config.max_seq_len - len(prompt)
    if room <= 0:
        print(f"error: the prompt has {len(prompt)} tokens; the model's context is "
              f"{model.config.max_seq_len}", file=sys.stderr)
        return 2
    new_tokens = min(args.max_new_tokens, room)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    # Beam search is deterministic: without an explicit --temperature it does not sample.
    temperature = args.temperature
    if temperature is None:
        temperature = 0.0 if args.num_beams > 1 else 0.8
    try:
        for i in range(args.num_samples):
            out = model.generate(torch.tensor(prompt, device=device), new_tokens,
                                 temperature=temperature, top_k=args.top_k, top_p=args.top_p,
                                 eos_id=tokenizer.eot_id, generator=generator,
                                 min_p=args.min_p, repetition_penalty=args.repetition_penalty,
                                 num_beams=args.num_beams, length_penalty=args.length_penalty)
            new_ids = out[len(prompt):].tolist()
            end = next((k for k, t in enumerate(new_ids) if t in stop_ids), len(new_ids))
            ids = prompt_ids + new_ids[:end]
            if args.num_samples > 1:
                print(f"--- sample {i + 1}")
            print(tokenizer.decode(ids))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _load_llama2c(model_name: str, tokenizer_name: str | None, device: str):
    """(model on the device, tokenizer) for --llama2c, checking that their vocabularies agree."""
    from ..data.llama2c import default_tokenizer_name, llama2c_file, load_llama2c_tokenizer
    from ..device import pick_device
    from ..interop.llama2c import from_llama2c

    llama2c_file(model_name)  # a missing file is named as such, before any tokenizer question
    tokenizer_name = tokenizer_name or default_tokenizer_name(model_name)
    if tokenizer_name is None:
        raise ValueError(f"no known tokenizer for {model_name!r}: pass --tokenizer PATH (the "
                         f"larger llama2.c models use tokenizer.bin from the llama2.c repository)")
    model = from_llama2c(model_name)
    tokenizer = load_llama2c_tokenizer(tokenizer_name)
    if tokenizer.vocab_size != model.config.vocab_size:
        raise ValueError(f"tokenizer {tokenizer_name!r} has {tokenizer.vocab_size} ids but the "
                         f"model {model_name!r} has vocab_size {model.config.vocab_size}")
    return model.to(pick_device(device)).eval(), tokenizer


if __name__ == "__main__":
    sys.exit(main())
