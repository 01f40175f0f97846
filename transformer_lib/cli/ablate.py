"""tlib-ablate: what each design choice buys, measured on the book's task.

Trains the book's model (chapter 7's shape and recipe, on the book's TinyStories extract) for a
fixed number of steps, once per variant and seed, and writes one JSON file: per seed the
validation bits per byte, the parameter count and the training speed, plus the command, the torch
version, the CPU and the extract's checksums. Each variant changes one thing (a ModelConfig or
TrainConfig option). Where the change alters the parameter count, the feed-forward width is
re-chosen so the total is as close as it can be to the baseline's (``matched`` in the file says
how far). ``python -m transformer_lib.ablate --out FILE``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from ..book import BOOK_MODEL, BOOK_TRAINING, STORED_MODEL_DIR, book_tokens
from ..data.stories import book_stories, stories_fingerprint
from ..data.tokenizer import load_tokenizer
from ..fileio import write_text_atomically
from ..model.config import ModelConfig
from ..model.transformer import Transformer
from ..training import checkpoint as ckpt
from ..training.trainer import TrainConfig, Trainer, token_byte_lengths

# name: (ModelConfig changes, TrainConfig changes, what it tests). "baseline" is the book's model.
VARIANTS: dict[str, tuple[dict, dict, str]] = {
    "baseline": ({}, {}, "the book's model: RMSNorm, RoPE, SwiGLU, pre-norm, 4 query / 2 kv heads"),
    "layernorm": ({"norm": "layer"}, {}, "LayerNorm (bias-free) for RMSNorm"),
    "learned-positions": ({"positions": "learned"}, {}, "learned absolute positions for RoPE"),
    "sinusoidal-positions": ({"positions": "sinusoidal"}, {}, "sinusoidal positions for RoPE"),
    "no-positions": ({"positions": "none"}, {}, "no positions at all (NoPE) for RoPE"),
    "gelu-mlp": ({"mlp": "gelu"}, {}, "a GELU MLP (3/2 the width) for SwiGLU"),
    "post-norm": ({"norm_placement": "post"}, {}, "post-norm for pre-norm"),
    "multi-head": ({"num_kv_heads": 4}, {}, "multi-head attention (K = H = 4) for K = 2"),
    "multi-query": ({"num_kv_heads": 1}, {}, "multi-query attention (K = 1) for K = 2"),
    "untied": ({"tie_embeddings": False}, {}, "separate input and output embeddings"),
    "no-attention-scale": ({"attention_scale": False}, {}, "no 1/sqrt(D) in the attention"),
    "qk-norm": ({"qk_norm": True}, {}, "RMSNorm on queries and keys"),
    "zero-init-output": ({"zero_init_output": True}, {}, "output projections start at zero"),
    "logit-softcap": ({"logit_softcap": 15.0}, {}, "logits soft-capped at 15 (tanh)"),
    "muon": ({}, {"optimizer": "muon"}, "Muon for the blocks' matrices, AdamW for the rest"),
    "wsd": ({}, {"schedule": "wsd"}, "warm-up / stable / decay (last 20%) for the cosine"),
}


def sha256_of_file(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def variant_config(name: str, vocab_size: int, match: bool = True) -> tuple[ModelConfig, str]:
    """The variant's ModelConfig and how its parameter count was matched to the baseline's.

    With ``match``, a variant whose change alters the parameter count gets the feed-forward width
    whose total comes closest to the baseline's (parameters are linear in that width).
    """
    model_changes = VARIANTS[name][0]
    baseline = ModelConfig(vocab_size=vocab_size, **BOOK_MODEL)
    config = ModelConfig(vocab_size=vocab_size, **{**BOOK_MODEL, **model_changes})
    target, count = parameter_count(baseline), parameter_count(config)
    if not match or count == target:
        return config, "equal" if count == target else f"{count - target:+d} parameters"
    wider = ModelConfig(vocab_size=vocab_size, **{**BOOK_MODEL, **model_changes,
                                                  "ffn_hidden_dim": config.ffn_hidden_dim + 1})
    per_unit = parameter_count(wider) - count
    width = config.ffn_hidden_dim + round((target - count) / per_unit)
    if width < 1:
        raise ValueError(f"variant {name} cannot be matched by the feed-forward width")
    matched = ModelConfig(vocab_size=vocab_size, **{**BOOK_MODEL, **model_changes,
                                                    "ffn_hidden_dim": width})
    gap = parameter_count(matched) - target
    return matched, (f"feed-forward width {config.ffn_hidden_dim} -> {width} "
                     f"({count - target:+d} parameters before, {gap:+d} after)")


def parameter_count(config: ModelConfig) -> int:
    with torch.device("meta"):
        return Transformer(config).num_parameters()


def recipe_training(steps: int) -> dict:
    """Chapter 7's training settings for a run of ``steps`` steps: warm-up at most a fifth of
    the run, one evaluation (at the end)."""
    return {**BOOK_TRAINING, "max_steps": steps,
            "warmup_steps": min(BOOK_TRAINING["warmup_steps"], steps // 5),
            "eval_every": steps + 1, "log_every": steps}


def run_one(task: dict) -> dict:
    """Train one variant with one seed; returns its record. Runs in a worker process."""
    torch.set_num_threads(task["threads"])
    tokenizer = load_tokenizer(task["tokenizer"])
    train = book_tokens("train", tokenizer, task["cache_dir"]).tokens
    val = book_tokens("validation", tokenizer, task["cache_dir"]).tokens[:task["eval_tokens"]]
    config, _ = variant_config(task["variant"], tokenizer.vocab_size, task["match"])
    train_changes = VARIANTS[task["variant"]][1]
    settings = {**recipe_training(task["steps"]), **train_changes, "seed": task["seed"]}
    torch.manual_seed(task["seed"])  # the initial weights
    model = Transformer(config)
    trainer = Trainer(model, train, val, TrainConfig(device="cpu", precision="fp32", **settings),
                      token_byte_lengths(tokenizer), progress=False, log=None)
    history = trainer.fit()
    last_train = [r for r in history if r["kind"] == "train"][-1]
    final = [r for r in history if r["kind"] == "eval"][-1]
    tokens = task["steps"] * settings["batch_size"] * settings["seq_len"]
    return {"variant": task["variant"], "seed": task["seed"], "val_bpb": final["val_bpb"],
            "val_loss": final["val_loss"], "train_loss": last_train["loss"],
            "parameters": model.num_parameters(),
            "tokens_per_s": tokens / last_train["elapsed_s"]}


def run_ablations(variants: list[str], seeds: list[int], steps: int, eval_tokens: int,
                  jobs: int = 1, threads: int = 1, match: bool = True, cache_dir=None,
                  tokenizer_path: str | Path | None = None, log=print, on_record=None) -> dict:
    """Every (variant, seed) run; the results in the JSON layout the command writes.

    ``on_record(results)`` is called after each run with the results so far (the command writes
    them, so an interrupted sweep keeps what it finished).
    """
    unknown = [name for name in variants if name not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")
    tokenizer_path = Path(tokenizer_path or STORED_MODEL_DIR / ckpt.TOKENIZER)
    tokenizer = load_tokenizer(tokenizer_path)
    for split in ("train", "validation"):  # build the token caches once, before the workers
        book_tokens(split, tokenizer, cache_dir)
    tasks = [{"variant": v, "seed": s, "steps": steps, "eval_tokens": eval_tokens,
              "threads": threads, "match": match, "cache_dir": cache_dir,
              "tokenizer": str(tokenizer_path)} for s in seeds for v in variants]
    results: dict = {"variants": {}}
    for name in variants:
        config, matched = variant_config(name, tokenizer.vocab_size, match)
        model_changes, train_changes, description = VARIANTS[name]
        results["variants"][name] = {"description": description, "model": model_changes,
                                     "train": train_changes, "matched": matched,
                                     "ffn_hidden_dim": config.ffn_hidden_dim, "runs": []}
    results["recipe"] = {"model": BOOK_MODEL, "train": recipe_training(steps),
                         "steps": steps, "seeds": seeds, "eval_tokens": eval_tokens,
                         "threads_per_run": threads, "parallel_runs": jobs, "device": "cpu",
                         "precision": "fp32"}
    results["data"] = {"train_stories_sha256": stories_fingerprint(book_stories("train")),
                       "validation_stories_sha256": stories_fingerprint(book_stories("validation")),
                       "tokenizer_sha256": sha256_of_file(tokenizer_path)}
    start = time.perf_counter()
    if jobs == 1:
        outcomes = map(run_one, tasks)
    else:
        pool = ProcessPoolExecutor(jobs)
        outcomes = pool.map(run_one, tasks)
    for record in outcomes:
        name = record.pop("variant")
        results["variants"][name]["runs"].append(record)
        results["wall_s"] = time.perf_counter() - start
        if log is not None:
            log(f"{results['wall_s']:7.0f} s  seed {record['seed']}  {name:22s} "
                f"{record['val_bpb']:.4f} bits/byte  {record['tokens_per_s']:,.0f} tokens/s")
        if on_record is not None:
            on_record(results)
    if jobs != 1:
        pool.shutdown()
    results["wall_s"] = time.perf_counter() - start
    return results


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tlib-ablate", description=__doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the JSON file to write")
    parser.add_argument("--steps", type=int, default=150, help="training steps per run")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per variant (0, 1, ...)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), metavar="NAME",
                        help=f"which variants (default all): {', '.join(VARIANTS)}")
    parser.add_argument("--eval-tokens", type=int, default=65536,
                        help="validation tokens scored per run (the first ones)")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--no-match", action="store_true",
                        help="do not re-choose the feed-forward width to match parameters")
    parser.add_argument("--cache-dir", default=None, help="where token caches are kept")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.steps < 5 or args.seeds < 1 or args.jobs < 1 or args.threads < 1:
        sys.exit("tlib-ablate: --steps must be >= 5 and --seeds, --jobs, --threads >= 1")
    argv_used = sys.argv[1:] if argv is None else argv
    header = {"command": "python -m transformer_lib.ablate " + shlex.join(argv_used),
              "torch": torch.__version__, "python": platform.python_version(), "cpu": cpu_name()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def write(results: dict) -> None:
        write_text_atomically(out, json.dumps({**header, **results}, indent=1) + "\n")

    results = run_ablations(args.variants, list(range(args.seeds)), args.steps, args.eval_tokens,
                            args.jobs, args.threads, not args.no_match, args.cache_dir,
                            on_record=write)
    write(results)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
