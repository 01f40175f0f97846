"""Make chapter 9's stored decoding figures: eager, compiled and llama2.c's ``run.c``.

Usage, from the repository root on an idle machine (about 3 minutes)::

    LLAMA2C_PATH=/path/to/llama2c RUNC_SOURCE=/path/to/run.c python book_config/make_decoding_bench.py

It builds ``run.c`` one-threaded (``gcc -Ofast -march=native``) in a temporary folder, writes a
random-weight llama2.c file of stories15M's shape there (the writer the llama2.c tests use), and
runs ``tlib-bench --llama2c`` on it and on stories260K: batch-1 greedy tokens/s on one thread,
medians of 5 interleaved repetitions. It writes ``transformer_lib/assets/decoding/llama2c_bench.json``
with the machine and versions beside the figures, which chapter 9 loads. Timings are of this
machine: they are stored, never recomputed by the chapter.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' llama2.c writer

from tests.test_llama2c import random_weights, write_checkpoint  # noqa: E402
from transformer_lib.cli.bench_llama2c import run_llama2c  # noqa: E402
from transformer_lib.device import cpu_name  # noqa: E402

OUT = ROOT / "transformer_lib" / "assets" / "decoding" / "llama2c_bench.json"
STORIES15M_SHAPE = (288, 768, 6, 6, 6, 32000, 256)  # dim, hidden, layers, heads, kv, vocab, seq


def main() -> None:
    source = os.environ.get("RUNC_SOURCE")
    if not source or not Path(source).is_file():
        raise SystemExit("set RUNC_SOURCE to llama2.c's run.c (never copied into this repository)")
    tokenizer = Path(os.environ.get("LLAMA2C_PATH", ".")) / "tokenizer.bin"
    if not tokenizer.is_file():
        raise SystemExit("set LLAMA2C_PATH to the folder holding llama2.c's 32,000-token "
                         "tokenizer.bin (and stories260K.bin)")
    with tempfile.TemporaryDirectory() as folder:
        runc = str(Path(folder) / "run")
        subprocess.run(["gcc", "-Ofast", "-march=native", "-o", runc, source, "-lm"], check=True)
        random15m = str(Path(folder) / "random15M.bin")
        header, weights = random_weights(*STORIES15M_SHAPE, shared=True)
        write_checkpoint(random15m, header, weights, version=0)
        runs = {
            "stories260K": run_llama2c("stories260K", runc=runc),
            "stories15M shape, random weights": run_llama2c(
                random15m, tokenizer=str(tokenizer), runc=runc),
        }
    for result in runs.values():
        result["model"] = Path(result["model"]).name
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
    meta = {"cpu": cpu_name(), "torch": torch.__version__, "commit": commit,
            "date": datetime.date.today().isoformat(),
            "runc_build": "gcc -Ofast -march=native run.c -lm (one thread)",
            "command": "python book_config/make_decoding_bench.py"}
    OUT.write_text(json.dumps({"meta": meta, "runs": runs}, indent=2) + "\n")
    for name, result in runs.items():
        print(name, {k: round(v) for k, v in result["tokens_per_s"].items()},
              {k: round(v, 3) for k, v in result["ratio_to_runc"].items()})


if __name__ == "__main__":
    main()
