"""What the scripts that store training-command runs for the book share (make_five_minute_runs,
make_value_option_runs): train a plan of runs one at a time, or collect runs already made, and
write them to one JSON file with the machine they ran on."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from transformer_lib.device import cpu_name

ROOT = Path(__file__).resolve().parents[1]


def train(name: str, seed: int, folder: Path, data: str, flags: list[str]) -> Path:
    """One run of ``tlib-train`` with ``flags``, in ``folder``; returns its run directory."""
    out = folder / f"{name}_s{seed}"
    command = [sys.executable, "-m", "transformer_lib.cli.train", "--data", data, "--out",
               str(out), "--cache-dir", str(folder / "cache"), "--seed", str(seed), *flags,
               "--no-progress"]
    subprocess.run(command, check=True, cwd=ROOT)
    return out


def latest_meta(run: Path) -> dict:
    """The meta.json of a run directory's latest checkpoint."""
    latest = (run / "latest").read_text().strip()  # checkpoints/step_N
    return json.loads((run / latest / "meta.json").read_text())


def final_eval(meta: dict) -> tuple[dict, list[dict]]:
    """The run's last evaluation (every validation token) and the periodic ones before it."""
    evals = [r for r in meta["history"] if r["kind"] == "eval"]
    return evals[-1], evals[:-1]


def main(description: str, out: Path, plan: list[tuple[str, int]],
         flags: Callable[[str], list[str]], summarise: Callable[[str, Path], dict],
         command: str, made_by: str, note: str) -> None:
    """Train ``plan`` (name, seed) in order, or with ``--runs NAME:SEED=DIR`` collect runs
    already made; summarise each and write ``out``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--runs", nargs="*", default=None, help="NAME:SEED=DIR of made runs")
    parser.add_argument("--note", default=None,
                        help="added to the stored note: how collected runs were made, say")
    args = parser.parse_args()
    if args.note:
        note = f"{note}; {args.note}"
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
            for name, seed in plan:
                run = train(name, seed, Path(folder), data, flags(name))
                runs.append(summarise(name, run))
                print({k: v for k, v in runs[-1].items() if k != "evals"}, flush=True)
    meta = {"command": command, "cpu": cpu_name(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "date": datetime.date.today().isoformat(),
            "made_by": made_by, "note": note}
    out.write_text(json.dumps({"meta": meta, "runs": runs}, indent=2) + "\n")
    print(f"wrote {out}")
