"""Make chapter 12's stored comparison of the value options: the training command's model with
and without value embeddings and the value residual, three seeds each, one run at a time.

Usage, from the repository root on an idle machine (about 4.5 minutes a run on 2 cores)::

    TINYSTORIES_PATH=/path/to/the/extract python book_config/make_value_option_runs.py
    python book_config/make_value_option_runs.py --runs plain:0=DIR values:0=DIR ...   # collect

Each run is ``tlib-train --data $TINYSTORIES_PATH --max-steps 1300 --precision fp32 --seed S``,
with ``--value-embeddings --value-residual`` or without (plain), the rest the command's
defaults. 1,300 float32 steps are what the command's five minutes reach on a 2-core CPU
without bf16 arithmetic (an AVX2 AMD EPYC), the machine where its target was hardest to meet;
stopping by steps keeps the machine's speed out of the comparison, and the options' cost per
step is timed apart (benchmarks/RESULTS.md). Runs alternate between the two. ``--runs`` collects runs made by that
command instead of training (``NAME:SEED=DIR``; the options are read from each run's meta). It
records, per run, the options, the final validation bits per byte over every validation token
and the periodic evaluations (step, bits per byte on 64 windows), and writes
``transformer_lib/assets/value_option_runs.json`` with the machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from transformer_lib.device import cpu_name

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "transformer_lib" / "assets" / "value_option_runs.json"
STOP = ["--max-steps", "1300", "--precision", "fp32"]
FLAGS = {"plain": [], "values": ["--value-embeddings", "--value-residual"]}
PLAN = [(name, seed) for seed in (0, 1, 2) for name in FLAGS]


def train(name: str, seed: int, folder: Path, data: str) -> Path:
    out = folder / f"{name}_s{seed}"
    command = [sys.executable, "-m", "transformer_lib.cli.train", "--data", data, "--out",
               str(out), "--cache-dir", str(folder / "cache"), *STOP, "--seed", str(seed),
               *FLAGS[name], "--no-progress"]
    subprocess.run(command, check=True, cwd=ROOT)
    return out


def summarise(name: str, run: Path) -> dict:
    latest = (run / "latest").read_text().strip()
    meta = json.loads((run / latest / "meta.json").read_text())  # latest: checkpoints/step_N
    config, model = meta["train_config"], meta["model_config"]
    if (config["max_steps"], config["precision"]) != (int(STOP[1]), STOP[3]):
        raise SystemExit(f"{run} is not a run of {' '.join(STOP)}")
    options = {key: model.get(key, False) for key in ("value_embeddings", "value_residual")}
    if any(options.values()) != (name == "values"):
        raise SystemExit(f"{run} has {options}: not a {name!r} run")
    evals = [r for r in meta["history"] if r["kind"] == "eval"]
    return {"name": name, **options, "seed": config["seed"], "steps": meta["step"],
            "val_bpb": evals[-1]["val_bpb"], "train_seconds": evals[-1]["elapsed_s"],
            "evals": [{"step": r["step"], "val_bpb": r["val_bpb"]} for r in evals[:-1]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="*", default=None, help="NAME:SEED=DIR of made runs")
    args = parser.parse_args()
    runs = []
    if args.runs:
        for spec in args.runs:
            label, folder = spec.split("=", 1)
            runs.append(summarise(label.split(":")[0], Path(folder)))
    else:
        data = os.environ.get("TINYSTORIES_PATH")
        if not data:
            raise SystemExit("set TINYSTORIES_PATH to the book's extract of TinyStories")
        with tempfile.TemporaryDirectory() as folder:
            for name, seed in PLAN:
                runs.append(summarise(name, train(name, seed, Path(folder), data)))
                print({k: v for k, v in runs[-1].items() if k != "evals"}, flush=True)
    meta = {"command": f"tlib-train --data $TINYSTORIES_PATH {' '.join(STOP)} --seed S "
                       f"[{' '.join(FLAGS['values'])}]",
            "cpu": cpu_name(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "date": datetime.date.today().isoformat(),
            "made_by": "python book_config/make_value_option_runs.py",
            "note": "one run at a time, plain and value options alternating"}
    OUT.write_text(json.dumps({"meta": meta, "runs": runs}, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
