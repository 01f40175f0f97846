"""tlib-evaluate: loss and bits per byte of a checkpoint over a whole text."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from ..device import keep_freed_cpu_memory, pick_precision
from ..training import checkpoint as ckpt
from ..training.metrics import byte_lengths_after_eot, evaluate_tokens, token_byte_lengths
from . import positive_int


def evaluate_checkpoint(path: str, data: str | None, split: str = "validation",
                        device: str = "auto", precision: str = "fp32",
                        batch_size: int = 16, cache_dir: str | None = None,
                        progress: bool = True) -> dict:
    """Loss per token and bits per UTF-8 byte over every token of the text at ``data``."""
    from ..data.tokens import cache_split

    if data is not None and Path(data).is_file():
        # A single file is evaluated whole, whatever split its name suggests.
        named = Path(data).name.split(".")[0].split("-")[0]
        split = named if named in ("train", "validation", "test") else split
    model, tokenizer, meta = ckpt.load_checkpoint_and_tokenizer(path, device)
    device_ = model.embed_tokens.weight.device
    with tempfile.TemporaryDirectory() as tmp:
        cache = cache_split(split, tokenizer, source=data, cache_dir=cache_dir or tmp,
                            progress=progress)
        if cache.n_bytes == 0:  # only the leading end-of-text token: nothing to predict
            where = data if data is not None else f"the {split} split of $TINYSTORIES_PATH"
            raise ValueError(f"{where} holds no text (no stories); give a text with at least "
                             f"one story")
        seq_len = meta.get("train_config", {}).get("seq_len", model.config.max_seq_len)
        result = evaluate_tokens(model, cache.tokens, token_byte_lengths(tokenizer), seq_len,
                                 batch_size, device_, pick_precision(device_, precision),
                                 progress=progress, after_eot=byte_lengths_after_eot(tokenizer))
        text_bytes = cache.n_bytes
    if result["bytes"] != text_bytes:
        raise RuntimeError(f"evaluated {result['bytes']} bytes but the text has {text_bytes}")
    return {**result, "checkpoint": str(ckpt.resolve_checkpoint(path)),
            "step": meta.get("step"), "split": split}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tlib-evaluate",
        description="Mean loss per token and bits per byte of a checkpoint over every token of a "
                    "text (a file, or a directory's validation split).")
    parser.add_argument("--checkpoint", required=True, help="run directory or step_* checkpoint")
    parser.add_argument("--data", default=None,
                        help="a text file or a directory (default: $TINYSTORIES_PATH)")
    parser.add_argument("--split", default="validation", help="split of a directory to read")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--batch-size", type=positive_int, default=16)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    keep_freed_cpu_memory()
    try:
        result = evaluate_checkpoint(args.checkpoint, args.data, args.split, args.device,
                                     args.precision, args.batch_size, progress=not args.json)
    except (ckpt.CheckpointError, FileNotFoundError, ValueError, ConnectionError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{Path(result['checkpoint'])} (step {result['step']}) on {result['split']}: "
              f"loss {result['loss']:.4f} nats/token, {result['bits_per_byte']:.4f} bits/byte "
              f"over {result['tokens']:,} tokens, {result['bytes']:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
