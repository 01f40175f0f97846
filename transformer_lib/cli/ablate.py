"""tlib-ablate: what each design choice buys, measured on the book's task.

Trains the book's model (chapter 7's shape and recipe, on the book's TinyStories extract) for a
fixed number of steps, once per variant and seed, and writes one JSON file: per seed the
validation bits per byte, the parameter count and the training speed, plus the command, the torch
version, the CPU and the extract's checksums. Each variant changes one thing (a ModelConfig or
TrainConfig option). Where the change alters the parameter count, the feed-forward width is
re-chosen so the total is as close as it can be to the baseline's (``matched`` in the file says
how far). ``python -m transformer_lib.ablate --out FILE --jobs 2`` remakes the stored sweep
(its time on one machine: benchmarks/RESULTS.md).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import platform
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from ..book import BOOK_MODEL, STORED_MODEL_DIR, book_tokens
from ..book.ablations import VARIANTS, recipe_training, train_variant, variant_config
from ..data.stories import book_stories, stories_fingerprint
from ..data.tokenizer import load_tokenizer
from ..device import cpu_name
from ..fileio import output_path_problem, write_text_atomically
from ..training import checkpoint as ckpt
from . import positive_int


def sha256_of_file(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run_one(task: dict) -> dict:
    """Train one variant with one seed; returns its record. Runs in a worker process."""
    torch.set_num_threads(task["threads"])
    tokenizer = load_tokenizer(task["tokenizer"])
    _, record = train_variant(task["variant"], tokenizer, task["steps"], task["seed"],
                              task["eval_tokens"], task["match"], task["cache_dir"])
    return {"variant": task["variant"], **record}


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


def merge_results(parts: list[dict]) -> dict:
    """One results file from sweeps of the same recipe over different seeds (say, run as
    separate processes) or different variants (one added later): the runs of each variant
    together, in seed order. Every variant must end with every seed the files cover."""
    if len(parts) < 2:
        raise ValueError("give at least two results files to merge")
    first = parts[0]
    same = ("recipe", "data", "torch")
    for part in parts[1:]:
        for key in same:
            a = {k: v for k, v in first[key].items() if k != "seeds"} if key == "recipe" \
                else first[key]
            b = {k: v for k, v in part[key].items() if k != "seeds"} if key == "recipe" \
                else part[key]
            if a != b:
                raise ValueError(f"the files differ in {key!r}: only sweeps of one recipe, data "
                                 f"and torch version can be merged")
    merged = json.loads(json.dumps(first))
    seeds = sorted({seed for part in parts for seed in part["recipe"]["seeds"]})
    merged["recipe"]["seeds"] = seeds
    variants = {}
    for name in dict.fromkeys(name for part in parts for name in part["variants"]):
        entries = [part["variants"][name] for part in parts if name in part["variants"]]
        runs = [run for entry in entries for run in entry["runs"]]
        if len({run["seed"] for run in runs}) != len(runs):
            raise ValueError(f"variant {name}: a seed appears in two files")
        if sorted(run["seed"] for run in runs) != seeds:
            raise ValueError(f"variant {name} has seeds {sorted(run['seed'] for run in runs)} "
                             f"of the files' {seeds}: merge files that complete each other")
        variants[name] = {**json.loads(json.dumps(entries[0])),
                          "runs": sorted(runs, key=lambda run: run["seed"])}
    merged["variants"] = variants
    merged.pop("command", None)  # the merge's own command heads the file; the parts keep theirs
    merged["parts"] = [{"command": part["command"], "seeds": part["recipe"]["seeds"],
                        "cpu": part["cpu"], "wall_s": part.get("wall_s"),
                        **({"note": part["note"]} if "note" in part else {})} for part in parts]
    merged.pop("wall_s", None)
    return merged


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tlib-ablate", description=__doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the JSON file to write")
    parser.add_argument("--steps", type=int, default=300,
                        help="training steps per run (300: chapter 7's run)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per variant (0, 1, ...)")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="the first seed (to split a sweep over several processes)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), metavar="NAME",
                        choices=list(VARIANTS),
                        help=f"which variants (default all): {', '.join(VARIANTS)}")
    parser.add_argument("--eval-tokens", type=positive_int, default=65536,
                        help="validation tokens scored per run (the first ones)")
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--no-match", action="store_true",
                        help="do not re-choose the feed-forward width to match parameters")
    parser.add_argument("--merge", nargs="+", metavar="FILE",
                        help="instead of running: merge results files of one recipe (different "
                             "seeds) into --out")
    parser.add_argument("--cache-dir", default=None, help="where token caches are kept")
    return parser


def read_results_file(path: str | Path) -> dict:
    """One results file written by this command, checked for the fields a merge reads."""
    try:
        part = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a tlib-ablate results file (not JSON: {err})") from None
    needed = {"command": str, "cpu": str, "torch": str, "data": dict, "recipe": dict,
              "variants": dict}
    if not isinstance(part, dict):
        raise ValueError(f"{path} is not a tlib-ablate results file (a JSON "
                         f"{type(part).__name__}, not an object)")
    for key, kind in needed.items():
        if not isinstance(part.get(key), kind):
            found = "no" if key not in part else f"a {type(part[key]).__name__} as"
            raise ValueError(f"{path} is not a tlib-ablate results file: it has {found} "
                             f"{key!r} (want {kind.__name__})")
    seeds = part["recipe"].get("seeds")
    if not isinstance(seeds, list) or not all(isinstance(seed, int) for seed in seeds):
        raise ValueError(f"{path}: 'recipe' has no list of 'seeds'; is it a tlib-ablate file?")
    for name, entry in part["variants"].items():
        runs = entry.get("runs") if isinstance(entry, dict) else None
        if not isinstance(runs, list) or not all(
                isinstance(run, dict) and isinstance(run.get("seed"), int) for run in runs):
            raise ValueError(f"{path}: variant {name!r} has no list of 'runs' with a 'seed' each")
    return part


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.steps < 5 or args.seeds < 1 or args.jobs < 1 or args.threads < 1:
        parser.error("--steps must be >= 5 and --seeds, --jobs, --threads >= 1")
    argv_used = sys.argv[1:] if argv is None else argv
    header = {"command": "python -m transformer_lib.ablate " + shlex.join(argv_used),
              "torch": torch.__version__, "python": platform.python_version(), "cpu": cpu_name()}
    out = Path(args.out)
    # Checked before the first run: a sweep takes hours, and its results are written as it goes.
    problem = output_path_problem(out)
    if problem:
        parser.error(problem)

    def write(results: dict) -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(out, json.dumps({**header, **results}, indent=1) + "\n")

    if args.merge:
        if len(args.merge) < 2:
            parser.error("--merge needs at least two results files")
        try:
            merged = merge_results([read_results_file(path) for path in args.merge])
        except ValueError as err:
            parser.error(str(err))
        write(merged)
        print(f"wrote {out}")
        return
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    results = run_ablations(args.variants, seeds, args.steps, args.eval_tokens, args.jobs,
                            args.threads, not args.no_match, args.cache_dir,
                            log=functools.partial(print, flush=True), on_record=write)
    write(results)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
