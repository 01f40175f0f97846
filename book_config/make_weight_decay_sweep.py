"""Make chapter 7's stored weight-decay sweep: the training command's recipe at several decays.

Usage, from the repository root on an idle machine (about 4 minutes a value on 2 cores)::

    TINYSTORIES_PATH=/path/to/the/extract python book_config/make_weight_decay_sweep.py

Each run is ``tlib-train --data $TINYSTORIES_PATH --max-steps 600 --precision fp32 --seed 0
--optimizer adamw --batch-size 16 --schedule cosine --weight-decay WD``: the command line's
recipe as it was when 1.0 was chosen (AdamW, batches of 16 under the cosine; new models have
trained with Muon, batches of 8 and the warm-up/stable/decay schedule since), with a fixed
number of steps rather than minutes, so that every value gets the same steps, data order and
initialisation and the only difference is the decay (a paired comparison). It records, per
value, the last evaluation's validation bits per byte and loss and the mean of the training
losses logged in the last 100 steps (every 10th step), and writes
``transformer_lib/assets/weight_decay_sweep.json`` with the command and machine.
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

from transformer_lib.device import cpu_name

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "transformer_lib" / "assets" / "weight_decay_sweep.json"
DECAYS = (0.1, 0.3, 1.0, 3.0)
STEPS = 600


def run(decay: float, folder: Path, data: str) -> dict:
    out = folder / f"wd{decay}"
    command = [sys.executable, "-m", "transformer_lib.cli.train", "--data", data, "--out",
               str(out), "--cache-dir", str(folder / "cache"), "--max-steps", str(STEPS),
               "--precision", "fp32", "--seed", "0", "--optimizer", "adamw",
               "--batch-size", "16", "--schedule", "cosine", "--weight-decay", str(decay),
               "--no-progress"]
    subprocess.run(command, check=True, cwd=ROOT)
    latest = (out / "latest").read_text().strip()
    meta = json.loads((out / latest / "meta.json").read_text())  # latest: checkpoints/step_N
    history = meta["history"]
    last_eval = [r for r in history if r["kind"] == "eval"][-1]
    train_losses = [r["loss"] for r in history if r["kind"] == "train"]
    late = train_losses[-10:]  # logged every 10 steps: the last 100 steps
    return {"weight_decay": decay, "steps": meta["step"], "val_bpb": last_eval["val_bpb"],
            "val_loss": last_eval["val_loss"], "late_train_loss": sum(late) / len(late)}


def main() -> None:
    data = os.environ.get("TINYSTORIES_PATH")
    if not data:
        raise SystemExit("set TINYSTORIES_PATH to the book's extract of TinyStories")
    with tempfile.TemporaryDirectory() as folder:
        runs = []
        for decay in DECAYS:
            runs.append(run(decay, Path(folder), data))
            print(runs[-1], flush=True)
    meta = {"command": f"tlib-train --data $TINYSTORIES_PATH --max-steps {STEPS} --precision fp32 "
                       f"--seed 0 --optimizer adamw --batch-size 16 --schedule cosine "
                       f"--weight-decay WD", "cpu": cpu_name(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(), "date": datetime.date.today().isoformat(),
            "made_by": "python book_config/make_weight_decay_sweep.py"}
    OUT.write_text(json.dumps({"meta": meta, "runs": runs}, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
