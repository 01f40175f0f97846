"""Make chapter 12's stored equal-time comparison: the training command's five-minute run with
AdamW and with Muon, from two seeds each, one run at a time.

Usage, from the repository root on an idle machine (about 5.5 minutes a run on 2 cores)::

    TINYSTORIES_PATH=/path/to/the/extract python book_config/make_five_minute_runs.py
    python book_config/make_five_minute_runs.py --runs adamw:0=DIR muon:0=DIR ...   # collect

Each run is ``tlib-train --data $TINYSTORIES_PATH --max-minutes 5 --seed S --optimizer O
--batch-size 16 --schedule cosine`` (the rest the command's defaults): equal wall-clock, so a
slower step costs steps, and the optimizers are compared at what five minutes buy on this
machine. Runs alternate between the
optimizers so that a change in the machine's speed falls on both. ``--runs`` collects runs made
by exactly that command instead of training (``NAME:SEED=DIR``; NAME is a label, its flags are
read from the run's meta). It records, per run, the steps done, the final validation bits per
byte over every validation token, and the periodic evaluations (step, minutes, bits per byte on
64 windows), and writes ``transformer_lib/assets/five_minute_runs.json`` with the machine.
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
OUT = ROOT / "transformer_lib" / "assets" / "five_minute_runs.json"
PLAN = [("adamw", 0), ("muon", 0), ("adamw", 1), ("muon", 1)]
# The command's defaults when the comparison was made (they are now 8 windows and the
# warm-up/stable/decay schedule for a new model): pinned, so that the stored runs stay repeatable.
FIXED = ["--batch-size", "16", "--schedule", "cosine"]


def train(optimizer: str, seed: int, folder: Path, data: str) -> Path:
    out = folder / f"{optimizer}_s{seed}"
    command = [sys.executable, "-m", "transformer_lib.cli.train", "--data", data, "--out",
               str(out), "--cache-dir", str(folder / "cache"), "--max-minutes", "5",
               "--seed", str(seed), "--optimizer", optimizer, *FIXED, "--no-progress"]
    subprocess.run(command, check=True, cwd=ROOT)
    return out


def summarise(name: str, run: Path) -> dict:
    latest = (run / "latest").read_text().strip()
    meta = json.loads((run / latest / "meta.json").read_text())  # latest: checkpoints/step_N
    config = meta["train_config"]
    if config["max_minutes"] != 5 or config["max_steps"] is not None:
        raise SystemExit(f"{run} is not a five-minute run (max_minutes {config['max_minutes']}, "
                         f"max_steps {config['max_steps']})")
    evals = [r for r in meta["history"] if r["kind"] == "eval"]
    return {"name": name, "optimizer": config["optimizer"], "seed": config["seed"],
            "lr": config["lr"], "weight_decay": config["weight_decay"],
            "precision": config["precision"], "steps": meta["step"],
            "val_bpb": evals[-1]["val_bpb"], "train_seconds": evals[-1]["elapsed_s"],
            "evals": [{"step": r["step"], "minutes": r["elapsed_s"] / 60,
                       "val_bpb": r["val_bpb"]} for r in evals[:-1]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="*", default=None, help="NAME:SEED=DIR of made runs")
    args = parser.parse_args()
    if args.runs:
        runs = []
        for spec in args.runs:
            label, folder = spec.split("=", 1)
            runs.append(summarise(label.split(":")[0], Path(folder)))
    else:
        data = os.environ.get("TINYSTORIES_PATH")
        if not data:
            raise SystemExit("set TINYSTORIES_PATH to the book's extract of TinyStories")
        runs = []
        with tempfile.TemporaryDirectory() as folder:
            for optimizer, seed in PLAN:
                runs.append(summarise(optimizer, train(optimizer, seed, Path(folder), data)))
                print({k: v for k, v in runs[-1].items() if k != "evals"}, flush=True)
    meta = {"command": "tlib-train --data $TINYSTORIES_PATH --max-minutes 5 --seed S "
                       "--optimizer O " + " ".join(FIXED),
            "cpu": cpu_name(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "date": datetime.date.today().isoformat(),
            "made_by": "python book_config/make_five_minute_runs.py",
            "note": "one run at a time, optimizers alternating, on an otherwise idle machine"}
    OUT.write_text(json.dumps({"meta": meta, "runs": runs}, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
