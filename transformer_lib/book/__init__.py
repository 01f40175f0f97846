"""The book's helpers: its data, its two trained models, and the exercise checks.

- :func:`book_model` trains the small model of chapter 7 on the book's TinyStories extract.
  Training is seeded and stopped by steps, so it is deterministic on a given machine.
- :func:`stored_model` loads the model that later chapters study. It was trained once by the
  documented command-line recipe (its ``meta.json`` records the command, the extract's checksum
  and its validation bits per byte) and ships with the library, so every reader, on any CPU,
  studies the same weights.
- :func:`check` and :func:`check_parts` tell the reader whether an exercise's answer is right
  (they live in :mod:`transformer_lib.book.checking`, with :func:`compare_function`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.stories import BOOK_EXTRACT_SIZES, book_data_dir, book_stories
from ..data.tokenizer import load_tokenizer, train_tokenizer
from ..data.tokens import TokenCache, cache_split
from ..model.config import PRESETS, ModelConfig
from ..model.transformer import Transformer
from ..training import checkpoint as ckpt
from ..training.trainer import TrainConfig, Trainer, token_byte_lengths
from .checking import Part, check, check_parts, compare_function, function_answer, is_placeholder

__all__ = ["BOOK_MODEL", "BOOK_PRESET", "BOOK_TRAINING", "BOOK_VOCAB_SIZE", "Part", "StoredModel",
           "TrainedModel", "book_model", "book_tokens", "check", "check_parts",
           "compare_function", "function_answer", "is_placeholder", "stored_ablations",
           "stored_model"]

# The book's model is the command line's default shape (the stored model has it too); chapter 7
# trains it with a shorter schedule, about two minutes on a 2-core CPU.
BOOK_PRESET = "tinystories-cpu"
BOOK_MODEL = {name: value for name, value in PRESETS[BOOK_PRESET].items() if name != "vocab_size"}
BOOK_VOCAB_SIZE = PRESETS[BOOK_PRESET]["vocab_size"]
BOOK_TRAINING = dict(batch_size=16, seq_len=128, max_steps=300, lr=3e-3, warmup_steps=20,
                     eval_every=100, eval_windows=64, log_every=5, seed=0)
DEFAULT_RUN_ROOT = Path("runs") / "book"
# The model chapters 8 onwards study: see book_config/make_stored_model.py for how it was made.
STORED_MODEL_DIR = Path(__file__).resolve().parents[1] / "assets" / "tinystories-1M"
# Chapter 12's ablation sweep, made by `python -m transformer_lib.ablate` (its "command" says how).
STORED_ABLATIONS = Path(__file__).resolve().parents[1] / "assets" / "ablations.json"
STORED_DECODING_TABLE = STORED_ABLATIONS.parent / "decoding" / "table.json"
STORED_DECODING_BENCH = STORED_ABLATIONS.parent / "decoding" / "llama2c_bench.json"
STORED_WEIGHT_DECAY_SWEEP = STORED_ABLATIONS.parent / "weight_decay_sweep.json"
STORED_FIVE_MINUTE_RUNS = STORED_ABLATIONS.parent / "five_minute_runs.json"
STORED_VALUE_OPTION_RUNS = STORED_ABLATIONS.parent / "value_option_runs.json"
STORED_VOCABULARY_RUNS = STORED_ABLATIONS.parent / "vocabulary_runs.json"


@dataclass
class TrainedModel:
    model: Transformer
    tokenizer: object
    history: list[dict]
    run_dir: Path
    reloaded: bool  # True when an existing checkpoint was loaded instead of training


@dataclass
class StoredModel:
    model: Transformer
    tokenizer: object
    meta: dict  # the training run's meta plus "recipe", "data" and "validation" entries


def stored_model(path: str | Path = STORED_MODEL_DIR) -> StoredModel:
    """The model that ships with the library, in eval mode on the CPU, with its tokenizer."""
    model, meta = ckpt.load_model_from_checkpoint(path)
    tokenizer = load_tokenizer(Path(path) / ckpt.TOKENIZER)
    if tokenizer.vocab_size != model.config.vocab_size:
        raise ckpt.CheckpointError(f"{path}: the tokenizer has {tokenizer.vocab_size} ids, the "
                                   f"model {model.config.vocab_size}")
    return StoredModel(model.eval(), tokenizer, meta)


def _read_json(path: str | Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def stored_ablations(path: str | Path = STORED_ABLATIONS) -> dict:
    """The ablation results that ship with the library (JSON: see ``tlib-ablate``)."""
    return _read_json(path)


def stored_decoding_table(path: str | Path = STORED_DECODING_TABLE) -> dict:
    """Decoding methods measured on the stored model (JSON: book_config/make_decoding_table.py)."""
    return _read_json(path)


def stored_decoding_bench(path: str | Path = STORED_DECODING_BENCH) -> dict:
    """Batch-1 decoding speeds, eager, compiled and llama2.c's run.c, with the machine they
    were measured on (JSON: book_config/make_decoding_bench.py)."""
    return _read_json(path)


def stored_weight_decay_sweep(path: str | Path = STORED_WEIGHT_DECAY_SWEEP) -> dict:
    """The training command's recipe at several weight decays, with its command and machine
    (JSON: book_config/make_weight_decay_sweep.py)."""
    return _read_json(path)


def stored_five_minute_runs(path: str | Path = STORED_FIVE_MINUTE_RUNS) -> dict:
    """The training command's five-minute run with AdamW and with Muon, several seeds, with the
    machine they ran on (JSON: book_config/make_five_minute_runs.py)."""
    return _read_json(path)


def stored_value_option_runs(path: str | Path = STORED_VALUE_OPTION_RUNS) -> dict:
    """The training command's model with and without the value options, several seeds at equal
    steps, with the machine they ran on (JSON: book_config/make_value_option_runs.py)."""
    return _read_json(path)


def stored_vocabulary_runs(path: str | Path = STORED_VOCABULARY_RUNS) -> dict:
    """The training command's model with BPE vocabularies of several sizes, several seeds each,
    at equal time, with the step-time ratios and the machine (JSON:
    book_config/make_vocabulary_runs.py)."""
    return _read_json(path)


def book_tokens(split: str, tokenizer, cache_dir=None, progress: bool = False) -> TokenCache:
    """The token cache of one split of the book's extract (encoded once, then reused)."""
    return cache_split(split, tokenizer, source=book_data_dir(), limit=BOOK_EXTRACT_SIZES[split],
                       cache_dir=cache_dir, progress=progress)


def book_model(run_root: str | Path = DEFAULT_RUN_ROOT, *, vocab_size: int = BOOK_VOCAB_SIZE, model_overrides: dict | None = None,
               train_overrides: dict | None = None,
               callbacks: Sequence[Callable[[dict], None]] = (), progress: bool = True,
               log: Callable[[str], None] | None = None, cache_dir=None,
               retrain: bool = False) -> TrainedModel:
    """Train the book's model on the book's extract, or reload this exact configuration's run.

    ``retrain=True`` discards an earlier run of the same configuration and trains again.
    """
    model_settings = {**BOOK_MODEL, **(model_overrides or {})}
    train_settings = {**BOOK_TRAINING, **(train_overrides or {})}
    recipe = json.dumps({"model": model_settings, "train": train_settings,
                         "vocab_size": vocab_size, "data": "book extract"}, sort_keys=True)
    run_dir = Path(run_root) / hashlib.sha256(recipe.encode()).hexdigest()[:12]
    if retrain and run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tokenizer_file = run_dir / ckpt.TOKENIZER
    if not tokenizer_file.exists():
        train_tokenizer(book_stories("train"), vocab_size, name=f"bpe-{vocab_size}").save(
            tokenizer_file)
    tokenizer = load_tokenizer(tokenizer_file)
    if (run_dir / "latest").exists():
        model, meta = ckpt.load_model_from_checkpoint(run_dir)
        if meta.get("step") == train_settings["max_steps"]:
            return TrainedModel(model.eval(), tokenizer, meta.get("history", []), run_dir, True)
    train_cache = book_tokens("train", tokenizer, cache_dir)
    val_cache = book_tokens("validation", tokenizer, cache_dir)
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
