"""Print tokenizer and token-cache figures on the TinyStories sample (a script, not a test).

Usage: TINYSTORIES_PATH=/path/to/tinystories python benchmarks/bench_tokenizer.py [--data PATH]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time

import torch

from transformer_lib.data import load_stories
from transformer_lib.data.tokenizer import load_tokenizer, train_tokenizer
from transformer_lib.data.tokens import build_token_cache

VOCAB_SIZES = (512, 4096, 8192)


def timed(function, *args, repeats: int = 1, **kwargs):
    """(result, best wall-clock seconds over repeats): the best run is the least noisy."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        result = function(*args, **kwargs)
        best = min(best, time.perf_counter() - started)
    return result, best


def encoding_figures(tokenizer, texts: list[str], n_bytes: int) -> str:
    """Bytes per token, and MB/s encoding with threads (encode_batch) and one by one (encode)."""
    batch, batch_s = timed(tokenizer.encode_batch, texts, repeats=3)
    _, single_s = timed(lambda: [tokenizer.encode(text) for text in texts], repeats=3)
    n_tokens = sum(map(len, batch))
    return (
        f"{n_bytes / n_tokens:6.2f} bytes/token   encode_batch {n_bytes / batch_s / 1e6:5.1f} MB/s"
        f"   encode {n_bytes / single_s / 1e6:5.1f} MB/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="TinyStories source (default: $TINYSTORIES_PATH)")
    args = parser.parse_args()

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, load average {os.getloadavg()[0]:.2f}"
    )
    (train, validation), load_s = timed(
        lambda: (load_stories("train", args.data), load_stories("validation", args.data))
    )
    train_texts, validation_texts = list(train["text"]), list(validation["text"])
    train_bytes = sum(len(text.encode("utf-8")) for text in train_texts)
    validation_bytes = sum(len(text.encode("utf-8")) for text in validation_texts)
    print(
        f"data: train {len(train_texts)} stories {train_bytes / 1e6:.2f} MB, validation "
        f"{len(validation_texts)} stories {validation_bytes / 1e6:.2f} MB (loaded in {load_s:.2f} s)"
    )

    print("\ntokenizer training on train (best of 3), then encoding validation (best of 3):")
    tokenizers = {}
    for vocab_size in VOCAB_SIZES:
        tokenizer, train_s = timed(train_tokenizer, train_texts, vocab_size, repeats=3)
        tokenizers[vocab_size] = tokenizer
        print(
            f"  bpe vocab {vocab_size:5d}: trained in {train_s:5.2f} s   "
            + encoding_figures(tokenizer, validation_texts, validation_bytes)
        )
    try:
        gpt2 = load_tokenizer("gpt2")
        print(
            "  gpt2 vocab 50257:                     "
            + encoding_figures(gpt2, validation_texts, validation_bytes)
        )
    except ConnectionError:
        print("  gpt2: skipped (its files are not in tiktoken's cache and the network is off)")

    print("\ntoken cache of train with the vocab-4096 tokenizer (best of 3 fresh builds):")
    build_s = float("inf")
    for _ in range(3):
        with tempfile.TemporaryDirectory() as cache_dir:
            cache, seconds = timed(
                build_token_cache, train, tokenizers[4096], cache_dir, progress=False
            )
            reused, reuse_s = timed(
                build_token_cache, train, tokenizers[4096], cache_dir, progress=False
            )
            assert reused.reused and not cache.reused
            build_s = min(build_s, seconds)
            size_mb = cache.path.stat().st_size / 1e6
    print(
        f"  built in {build_s:.2f} s ({cache.n_tokens} tokens, {cache.tokens.dtype}, "
        f"{size_mb:.2f} MB on disk); reused in {reuse_s:.3f} s (fingerprint check only)"
    )

    print("\nCLI, end to end (new process: imports, load, train, save, report):")
    with tempfile.TemporaryDirectory() as out_dir:
        command = [sys.executable, "-m", "transformer_lib.data.tokenizer", "train"]
        command += ["--vocab-size", "4096", "--out", f"{out_dir}/bpe4096.json"]
        command += ["--input", args.data] if args.data else []
        _, cli_s = timed(subprocess.run, command, check=True, capture_output=True)
    print(f"  tlib-tokenizer train --vocab-size 4096: {cli_s:.1f} s")
    print(
        f"\nload average at the end: {os.getloadavg()[0]:.2f} (other work on the machine skews figures)"
    )


if __name__ == "__main__":
    main()
