"""The small TinyStories model the book trains in chapter 7 and reuses in later chapters.

Training is seeded and stopped by steps, so it is deterministic on a given machine: a chapter
that finds the checkpoint reloads it, and one that does not retrains the same weights.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from . import checkpoint as ckpt
from .config import ModelConfig
from .model import Transformer
from .trainer import TrainConfig, Trainer, token_byte_lengths

# Sized so chapter 7 trains in about two minutes on a 2-core CPU; the command line's defaults
# (python -m transformer_lib.train) train the same kind of model for five.
BOOK_MODEL = dict(d_model=128, num_layers=4, num_heads=4, max_seq_len=256)
BOOK_TRAINING = dict(batch_size=16, seq_len=128, max_steps=300, lr=3e-3, warmup_steps=20,
                     eval_every=100, eval_windows=64, log_every=5, seed=0)
BOOK_VOCAB_SIZE = 2048
DEFAULT_RUN_ROOT = Path("runs") / "book"


@dataclass
class TrainedModel:
    model: Transformer
    tokenizer: object
    history: list[dict]
    run_dir: Path
    reloaded: bool  # True when an existing checkpoint was loaded instead of training


def book_model(run_root: str | Path = DEFAULT_RUN_ROOT, *, data=None,
               vocab_size: int = BOOK_VOCAB_SIZE, model_overrides: dict | None = None,
               train_overrides: dict | None = None,
               callbacks: Sequence[Callable[[dict], None]] = (), progress: bool = True,
               log: Callable[[str], None] | None = None, cache_dir=None,
               retrain: bool = False) -> TrainedModel:
    """Train the book's model, or reload it if this exact configuration was trained before.

    ``retrain=True`` discards an earlier run of the same configuration and trains again.
    """
    from .tokens import cache_split
    from .train import prepare_tokenizer

    model_settings = {**BOOK_MODEL, **(model_overrides or {})}
    train_settings = {**BOOK_TRAINING, **(train_overrides or {})}
    recipe = json.dumps({"model": model_settings, "train": train_settings,
                         "vocab_size": vocab_size, "data": str(data)}, sort_keys=True)
    run_dir = Path(run_root) / hashlib.sha256(recipe.encode()).hexdigest()[:12]
    if retrain and run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tokenizer, tokenizer_file = prepare_tokenizer(run_dir, data, None, vocab_size, True)
    if (run_dir / "latest").exists():
        model, meta = ckpt.load_model_from_checkpoint(run_dir)
        if meta.get("step") == train_settings["max_steps"]:
            return TrainedModel(model.eval(), tokenizer, meta.get("history", []), run_dir, True)
    train_cache = cache_split("train", tokenizer, source=data, cache_dir=cache_dir,
                              progress=False)
    val_cache = cache_split("validation", tokenizer, source=data, cache_dir=cache_dir,
                            progress=False)
    config = ModelConfig(vocab_size=tokenizer.vocab_size, **model_settings)
    torch.manual_seed(train_settings["seed"])  # the same initial weights on every retrain
    trainer = Trainer(Transformer(config), train_cache.tokens, val_cache.tokens,
                      TrainConfig(device="cpu", precision="fp32", **train_settings),
                      token_byte_lengths(tokenizer), run_dir=run_dir,
                      tokenizer_file=tokenizer_file, callbacks=callbacks, progress=progress,
                      log=log)
    if (run_dir / "latest").exists():  # an interrupted earlier attempt: continue it exactly
        trainer.resume(run_dir)
    history = trainer.fit()
    return TrainedModel(trainer.model.eval(), tokenizer, history, run_dir, False)


def check(exercise: str, passed: bool, hint: str = "") -> None:
    """Tell the reader whether an exercise's answer is right, in one printed line.

    Returns nothing, so a check at the end of a cell adds no stray value to its output.
    """
    if passed:
        print(f"{exercise}: correct")
    else:
        print(f"{exercise}: not yet" + (f" - hint: {hint}" if hint else ""))
