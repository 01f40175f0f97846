"""Make chapter 12's stored comparison of vocabulary sizes: the training command's model with a
BPE of 1,024, 2,048, 3,072 and 4,096 ids, three seeds each, at equal time, one run at a time.

Usage, from the repository root on an idle machine (about 4 minutes a run on 2 cores)::

    TINYSTORIES_PATH=/path/to/the/extract python book_config/make_vocabulary_runs.py
    python book_config/make_vocabulary_runs.py --runs 1024:0=DIR 2048:0=DIR ...   # collect
    python book_config/make_vocabulary_runs.py --time   # re-measure the step-time ratios

Each run is ``tlib-train --data $TINYSTORIES_PATH --vocab-size V --max-steps N --precision fp32
--seed S``, the rest the command's defaults. A larger vocabulary packs more text into a token
but makes every step longer (the output layer scores every id at every position), so the sizes
are compared at equal time, not equal steps: N is the 1,300 float32 steps that the command's
five minutes reach on a 2-core CPU without bf16 arithmetic (an AVX2 AMD EPYC), divided by the
size's step time relative to 2,048 ids. Those ratios (``STEP_TIME_RATIO``) were measured the
way ``--time`` measures them: float32 training steps of the four shapes interleaved in one process under the
AVX2 stand-in (``MKL_ENABLE_INSTRUCTIONS=AVX2 ATEN_CPU_CAPABILITY=avx2
ONEDNN_MAX_CPU_ISA=AVX2``, set by ``--time`` itself), medians of 25 steps. Stopping by steps
keeps the machine's speed out of the comparison. ``--runs`` collects runs made by that command
instead of training (``VOCAB:SEED=DIR``). It records, per run, the vocabulary, its step-time
ratio, the parameters, the steps, the final validation bits per byte over every validation
token, the tokenizer's bytes per validation token, tokens per second and the periodic
evaluations, and writes
``transformer_lib/assets/vocabulary_runs.json`` with the machine and the ratios.
"""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import stored_runs

OUT = stored_runs.ROOT / "transformer_lib" / "assets" / "vocabulary_runs.json"
BASE_STEPS = 1300  # the AVX2 EPYC's five minutes at 2,048 ids
# Float32 step time relative to 2,048 ids (as --time measures it; 2026-12-05, 2-core AMD EPYC
# under the AVX2 stand-in: 164.1, 179.9, 205.0 and 236.8 ms a step).
STEP_TIME_RATIO = {1024: 0.912, 2048: 1.0, 3072: 1.140, 4096: 1.316}
STEPS = {vocab: round(BASE_STEPS / ratio) for vocab, ratio in STEP_TIME_RATIO.items()}
PLAN = [(str(vocab), seed) for seed in (0, 1, 2) for vocab in STEP_TIME_RATIO]
AVX2_STAND_IN = {"MKL_ENABLE_INSTRUCTIONS": "AVX2", "ATEN_CPU_CAPABILITY": "avx2",
                 "ONEDNN_MAX_CPU_ISA": "AVX2"}


def flags(name: str) -> list[str]:
    vocab = int(name)
    return ["--vocab-size", str(vocab), "--max-steps", str(STEPS[vocab]), "--precision", "fp32"]


def summarise(name: str, run: Path) -> dict:
    from transformer_lib.model import ModelConfig, Transformer

    meta = stored_runs.latest_meta(run)
    config = meta["train_config"]
    model_config = ModelConfig.from_dict(meta["model_config"])
    vocab = model_config.vocab_size
    if str(vocab) != name or (config["max_steps"], config["precision"]) != (STEPS[vocab], "fp32"):
        raise SystemExit(f"{run} is not a run of {' '.join(flags(name))}")
    final, periodic = stored_runs.final_eval(meta)
    seconds = final["elapsed_s"]
    return {"name": name, "vocab_size": vocab, "seed": config["seed"], "steps": meta["step"],
            "step_time_ratio": STEP_TIME_RATIO[vocab],
            "parameters": Transformer(model_config).num_parameters(),
            "val_bpb": final["val_bpb"],
            # bits per byte = nats per token / (ln 2 x bytes per token)
            "bytes_per_token": final["val_loss"] / (math.log(2) * final["val_bpb"]),
            "train_seconds": seconds,
            # on whichever machine made the run: compare runs made on one machine only
            "tokens_per_s": meta["step"] * config["batch_size"] * config["seq_len"] / seconds,
            "evals": [{"step": r["step"], "val_bpb": r["val_bpb"]} for r in periodic]}


def time_steps(repeats: int = 30, warm_up: int = 5) -> dict[int, float]:
    """Median float32 step time per vocabulary, the steps interleaved (this process's CPU)."""
    import numpy as np
    import torch

    from transformer_lib.model import ModelConfig, Transformer
    from transformer_lib.training.trainer import CLI_RECIPE, TrainConfig, Trainer

    trainers = {}
    for vocab in STEP_TIME_RATIO:
        tokens = np.random.default_rng(0).integers(0, vocab, 200_000).astype(np.uint16)
        torch.manual_seed(0)
        model = Transformer(ModelConfig.from_preset("tinystories-cpu", vocab_size=vocab))
        config = TrainConfig(max_steps=10**6, precision="fp32", **{
            key: CLI_RECIPE[key] for key in ("optimizer", "batch_size", "schedule",
                                             "weight_decay")})
        trainers[vocab] = Trainer(model, tokens, tokens[:10_000], config,
                                  np.ones(vocab, dtype=np.int64), progress=False, log=None)
    times = {vocab: [] for vocab in trainers}
    for _ in range(repeats):
        for vocab, trainer in trainers.items():
            start = time.perf_counter()
            trainer._train_step(1e-3)  # the library's own step: forward, backward, update
            times[vocab].append(time.perf_counter() - start)
    return {vocab: statistics.median(t[warm_up:]) for vocab, t in times.items()}


if __name__ == "__main__":
    if sys.argv[1:] == ["--time"]:
        if os.environ.get("ATEN_CPU_CAPABILITY") != "avx2":  # the stand-in must be set at start
            sys.exit(subprocess.run([sys.executable, __file__, "--time"],
                                    env={**os.environ, **AVX2_STAND_IN}).returncode)
        medians = time_steps()
        for vocab, seconds in medians.items():
            print(f"{vocab:>5} ids: {1000 * seconds:6.1f} ms a step, "
                  f"x{seconds / medians[2048]:.3f} of 2,048 ids")
        sys.exit(0)
    stored_runs.main(
        __doc__.splitlines()[0], OUT, PLAN, flags, summarise,
        command="tlib-train --data $TINYSTORIES_PATH --vocab-size V --max-steps N --precision "
                f"fp32 --seed S, N = {BASE_STEPS} / the step-time ratio: "
                + ", ".join(f"{v}: {n}" for v, n in STEPS.items()),
        made_by="python book_config/make_vocabulary_runs.py",
        note="one run at a time; each run records its size's step-time ratio")
