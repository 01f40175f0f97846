"""Make the stored model that chapters 8 onwards study: train it by the recipe, evaluate, store.

Usage (5 to 13 minutes on a 2-core CPU)::

    TINYSTORIES_PATH=/path/to/the/extract python book_config/make_stored_model.py [--run DIR]

``--run DIR`` stores a run that the recipe already made (``tlib-train
--data $TINYSTORIES_PATH --out DIR --max-steps 2400 --batch-size 8 --schedule wsd``)
instead of training again.

It runs the command-line recipe below on the book's TinyStories extract, evaluates the result
on every validation token, and writes the weights, the tokenizer and a ``meta.json`` (the
training run's meta plus the recipe, the extract's checksums and the validation figures) to
``transformer_lib/assets/tinystories-1M/``. The recipe is the command's defaults as they
were when the model was made (Muon for the blocks' matrices; bf16 autocast on a CPU with bf16
in hardware, float32 on others), and float rounding depends on the chip, so another machine
trains a slightly different model of the same quality: that is why the book ships these weights
instead of retraining them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from transformer_lib import book
from transformer_lib.data import (
    BOOK_EXTRACT_SIZES,
    book_data_dir,
    book_stories,
    stories_fingerprint,
)
from transformer_lib.device import cpu_name
from transformer_lib.training import checkpoint as ckpt
from transformer_lib.training.trainer import evaluate_tokens, token_byte_lengths

# The train command's defaults for a new model (trainer.CLI_RECIPE), its batch and schedule spelled
# out so that the recorded command still names them if the defaults move on. 2,400 steps of 8
# windows are 4.9M tokens, about 8.7 passes over the extract's training split.
RECIPE = ["--max-steps", "2400", "--batch-size", "8", "--schedule", "wsd"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=None, help="a run the recipe already made")
    args = parser.parse_args(argv)
    data = book_data_dir()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(args.run) if args.run else Path(tmp) / "run"
        if args.run is None:
            command = [sys.executable, "-m", "transformer_lib.cli.train", "--data", str(data),
                       "--out", str(run), "--no-progress", *RECIPE]
            subprocess.run(command, check=True)
        checkpoint = ckpt.resolve_checkpoint(run)
        stored = book.stored_model(checkpoint)
        model, tokenizer, meta = stored.model, stored.tokenizer, stored.meta
        if meta.get("step") != int(RECIPE[1]):
            raise SystemExit(f"{checkpoint} is at step {meta.get('step')}, not the recipe's "
                             f"{RECIPE[1]}")
        validation = book.book_tokens("validation", tokenizer, cache_dir=Path(tmp) / "tokens")
        result = evaluate_tokens(model, validation.tokens, token_byte_lengths(tokenizer),
                                 meta["train_config"]["seq_len"])
        assert result["bytes"] == validation.n_bytes, "evaluation missed part of the text"
        meta["data"] = {
            "extract": "the first 2,316 train and 1,000 validation stories of "
                       "roneneldan/TinyStories (the book's extract)",
            **{f"{split}_sha256": stories_fingerprint(book_stories(split))
               for split in BOOK_EXTRACT_SIZES},
        }
        meta["recipe"] = {
            "command": "tlib-train --data $TINYSTORIES_PATH "
                       "--out runs/stored " + " ".join(RECIPE),
            "torch": torch.__version__, "cpu": cpu_name(),
        }
        meta["validation"] = {key: result[key] for key in ("loss", "bits_per_byte", "tokens",
                                                            "bytes")}
        target = book.STORED_MODEL_DIR
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        shutil.copy(checkpoint / ckpt.WEIGHTS, target / ckpt.WEIGHTS)
        shutil.copy(checkpoint / ckpt.TOKENIZER, target / ckpt.TOKENIZER)
        (target / ckpt.META).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    print(f"stored {target}: {model.num_parameters():,} parameters, validation "
          f"{result['bits_per_byte']:.4f} bits/byte over {result['tokens']:,} tokens")
    return 0


if __name__ == "__main__":
    sys.exit(main())
