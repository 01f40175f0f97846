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

from pathlib import Path

import stored_runs

OUT = stored_runs.ROOT / "transformer_lib" / "assets" / "five_minute_runs.json"
PLAN = [("adamw", 0), ("muon", 0), ("adamw", 1), ("muon", 1)]
# The command's defaults when the comparison was made (they are now 8 windows and the
# warm-up/stable/decay schedule for a new model): pinned, so that the stored runs stay repeatable.
FIXED = ["--batch-size", "16", "--schedule", "cosine"]


def flags(optimizer: str) -> list[str]:
    return ["--max-minutes", "5", "--optimizer", optimizer, *FIXED]


def summarise(name: str, run: Path) -> dict:
    meta = stored_runs.latest_meta(run)
    config = meta["train_config"]
    if config["max_minutes"] != 5 or config["max_steps"] is not None:
        raise SystemExit(f"{run} is not a five-minute run (max_minutes {config['max_minutes']}, "
                         f"max_steps {config['max_steps']})")
    final, periodic = stored_runs.final_eval(meta)
    return {"name": name, "optimizer": config["optimizer"], "seed": config["seed"],
            "lr": config["lr"], "weight_decay": config["weight_decay"],
            "precision": config["precision"], "steps": meta["step"],
            "val_bpb": final["val_bpb"], "train_seconds": final["elapsed_s"],
            "evals": [{"step": r["step"], "minutes": r["elapsed_s"] / 60,
                       "val_bpb": r["val_bpb"]} for r in periodic]}


if __name__ == "__main__":
    stored_runs.main(
        __doc__.splitlines()[0], OUT, PLAN, flags, summarise,
        command="tlib-train --data $TINYSTORIES_PATH --max-minutes 5 --seed S --optimizer O "
                + " ".join(FIXED),
        made_by="python book_config/make_five_minute_runs.py",
        note="one run at a time, optimizers alternating, on an otherwise idle machine")
