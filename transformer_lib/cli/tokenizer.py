"""tlib-tokenizer (python -m transformer_lib.cli.tokenizer): train a byte-level BPE tokenizer."""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from ..data.stories import load_stories
from ..data.tokenizer import check_vocab_size, train_tokenizer
from ..fileio import output_path_problem


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point: `tlib-tokenizer train ...`."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, TypeError, KeyError, OSError) as err:  # OSError: also ConnectionError
        parser.exit(2, f"error: {err}\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tlib-tokenizer",
        description="Train a byte-level BPE tokenizer on TinyStories (served by tiktoken).",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    train = commands.add_parser(
        "train",
        help="train a tokenizer and write it to one JSON file",
        description="Train a byte-level BPE (GPT-2 split regex, <|endoftext|> special token) on "
        "the train split of a TinyStories source and write the JSON file that "
        "transformer_lib.data.tokenizer.load_tokenizer reads.",
    )
    train.add_argument(
        "--input",
        metavar="PATH",
        help="a directory (its train split is used: train.txt, train.jsonl, train.parquet, ...) "
        "or one .txt/.jsonl/.json/.parquet file; default: $TINYSTORIES_PATH, else the "
        "Hugging Face hub",
    )
    train.add_argument(
        "--vocab-size",
        type=int,
        required=True,
        metavar="N",
        help="number of ids including <|endoftext|>; at least 258, e.g. 4096",
    )
    train.add_argument("--out", required=True, metavar="PATH", help="tokenizer file to write")
    train.add_argument("--name", help="tokenizer name (default: the --out file name stem)")
    train.add_argument("--limit", type=int, metavar="N", help="train on the first N stories only")
    train.set_defaults(run=_run_train)
    return parser


def _run_train(args: argparse.Namespace) -> int:
    # Both before loading data, which may mean a download, and training, which may take long.
    check_vocab_size(args.vocab_size)
    problem = output_path_problem(args.out)
    if problem:
        raise ValueError(problem)
    started = time.perf_counter()
    stories = load_stories("train", source=args.input, limit=args.limit)["text"]
    if len(stories) == 0:
        where = args.input or "the train split"
        raise ValueError(f"{where} holds no stories (it is empty, or only blank lines and "
                         f"separators); give it some text")
    loaded = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tokenizer = train_tokenizer(stories, args.vocab_size,
                                    name=args.name or Path(args.out).stem)
    for warning in caught:  # the message alone: the source line it came from means nothing here
        print(f"warning: {warning.message}", file=sys.stderr)
    trained = time.perf_counter()
    out = tokenizer.save(args.out)
    n_bytes = sum(len(story.encode("utf-8")) for story in stories)
    n_tokens = sum(len(ids) for ids in tokenizer.encode_batch(stories))
    print(
        f"trained {tokenizer.name!r}: vocab_size {tokenizer.vocab_size}, eot_id {tokenizer.eot_id}, "
        f"on {len(stories)} stories ({n_bytes / 1e6:.2f} MB) in {trained - loaded:.1f} s "
        f"(loading {loaded - started:.1f} s); {n_bytes / max(n_tokens, 1):.2f} bytes/token on "
        f"the training text; wrote {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
