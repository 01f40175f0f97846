"""Adapting a trained model: what each adaptation buys (task score) and costs (parameters
trained, minutes, forgetting), side by side."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from .common import EVAL_COLOUR, TRAIN_COLOUR, format_count, new_figure

ADAPTATION_KEYS = ("score", "trainable_parameters", "minutes", "bpb_before", "bpb_after")


def plot_adaptation_results(runs: Mapping[str, Mapping[str, float]]) -> Figure:
    """Four panels, one bar per run: the task score, the trainable parameters (log scale), the
    training minutes, and bits per byte on ordinary stories before and after (forgetting).

    ``runs`` maps a label (``"LoRA r=8"``) to a dict with the keys of ``ADAPTATION_KEYS``.
    """
    if not runs:
        raise ValueError("runs is empty: pass {label: {score, trainable_parameters, ...}}")
    for label, run in runs.items():
        missing = [key for key in ADAPTATION_KEYS if key not in run]
        if missing:
            raise ValueError(f"run {label!r} lacks {', '.join(missing)}; each run needs "
                             f"{', '.join(ADAPTATION_KEYS)}")
    labels = list(runs)
    x = np.arange(len(labels))
    figure, axes = new_figure(1, 4, width=13.0, height=3.8)
    score_ax, params_ax, minutes_ax, bpb_ax = axes[0]

    scores = [float(runs[label]["score"]) for label in labels]
    bars = score_ax.bar(x, scores, color=TRAIN_COLOUR)
    score_ax.bar_label(bars, [f"{s:.1%}" for s in scores], fontsize=8)
    # Up to the best score and some room, not always to 1: low scores stay readable.
    score_ax.set_ylim(0, min(1.05, max(0.2, 1.3 * max(scores))))
    score_ax.set_title("stories using all 3 words")
    score_ax.set_ylabel("share of the held-out stories")

    params = [max(int(runs[label]["trainable_parameters"]), 0) for label in labels]
    bars = params_ax.bar(x, [max(p, 1) for p in params], color=TRAIN_COLOUR)
    params_ax.bar_label(bars, [format_count(p) for p in params], fontsize=8)
    params_ax.set_yscale("log")
    params_ax.set_title("trainable parameters")
    params_ax.set_ylabel("parameters (log scale)")

    minutes = [float(runs[label]["minutes"]) for label in labels]
    bars = minutes_ax.bar(x, minutes, color=TRAIN_COLOUR)
    minutes_ax.bar_label(bars, [f"{m:.1f}" for m in minutes], fontsize=8)
    minutes_ax.set_title("training time")
    minutes_ax.set_ylabel("minutes")

    width = 0.4
    before = [float(runs[label]["bpb_before"]) for label in labels]
    after = [float(runs[label]["bpb_after"]) for label in labels]
    bpb_ax.bar(x - width / 2, before, width, color=TRAIN_COLOUR, label="before")
    bpb_ax.bar(x + width / 2, after, width, color=EVAL_COLOUR, label="after")
    low, high = min(before + after), max(before + after)
    margin = max(high - low, 1e-3)
    bpb_ax.set_ylim(low - 2 * margin, high + margin)
    bpb_ax.set_title("forgetting: ordinary stories")
    bpb_ax.set_ylabel("bits per byte")
    bpb_ax.legend(fontsize=8, loc="lower right")

    for ax in axes[0]:
        ax.set_xticks(x, labels, rotation=25, ha="right", fontsize=8)
    return figure
