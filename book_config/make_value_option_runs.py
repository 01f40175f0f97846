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

from pathlib import Path

import stored_runs

OUT = stored_runs.ROOT / "transformer_lib" / "assets" / "value_option_runs.json"
STOP = ["--max-steps", "1300", "--precision", "fp32"]
FLAGS = {"plain": [], "values": ["--value-embeddings", "--value-residual"]}
PLAN = [(name, seed) for seed in (0, 1, 2) for name in FLAGS]


def flags(name: str) -> list[str]:
    return [*STOP, *FLAGS[name]]


def summarise(name: str, run: Path) -> dict:
    meta = stored_runs.latest_meta(run)
    config, model = meta["train_config"], meta["model_config"]
    if (config["max_steps"], config["precision"]) != (int(STOP[1]), STOP[3]):
        raise SystemExit(f"{run} is not a run of {' '.join(STOP)}")
    options = {key: model.get(key, False) for key in ("value_embeddings", "value_residual")}
    if any(options.values()) != (name == "values"):
        raise SystemExit(f"{run} has {options}: not a {name!r} run")
    final, periodic = stored_runs.final_eval(meta)
    return {"name": name, **options, "seed": config["seed"], "steps": meta["step"],
            "val_bpb": final["val_bpb"], "train_seconds": final["elapsed_s"],
            "evals": [{"step": r["step"], "val_bpb": r["val_bpb"]} for r in periodic]}


if __name__ == "__main__":
    stored_runs.main(
        __doc__.splitlines()[0], OUT, PLAN, flags, summarise,
        command=f"tlib-train --data $TINYSTORIES_PATH {' '.join(STOP)} --seed S "
                f"[{' '.join(FLAGS['values'])}]",
        made_by="python book_config/make_value_option_runs.py",
        note="one run at a time, plain and value options alternating")
