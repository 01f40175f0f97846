"""Where a model's parameters are, drawn."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from ...model.transformer import parameter_counts
from .common import format_count, new_figure


def plot_parameter_counts(counts, *, title: str | None = None) -> Figure:
    """Parameters per component as bars, each labelled with its count and share of the total.

    ``counts`` is a model (counted with ``model.parameter_counts``) or a mapping like the one it
    returns; the "total" key, if present, is used for the shares and not drawn as a bar.
    """
    if isinstance(counts, torch.nn.Module):
        counts = parameter_counts(counts)
    if not isinstance(counts, Mapping):
        raise TypeError(f"counts must be a model or a dict of component -> int, got "
                        f"{type(counts).__name__}")
    components = {name: value for name, value in counts.items() if name != "total"}
    if not components:
        raise ValueError("counts has no components to plot")
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"count for {name!r} must be a non-negative int, got {value!r}")
    total = int(counts.get("total", sum(components.values())))
    figure, axes = new_figure(width=7.0, height=4.0)
    ax = axes[0, 0]
    names = list(components)
    values = [int(components[n]) for n in names]
    bars = ax.bar(names, values, color=colormaps["tab10"].colors[:len(names)])
    bar_labels = []
    for name, value in zip(names, values, strict=True):
        if value == 0 and name == "lm_head":
            bar_labels.append("0 (tied to embedding)")
        else:
            share = f" ({100 * value / total:.1f}%)" if total else ""
            bar_labels.append(f"{format_count(value)}{share}")
    ax.bar_label(bars, bar_labels, fontsize=8, padding=2)
    ax.yaxis.set_major_formatter(EngFormatter())
    ax.set_ylim(0, max(values + [1]) * 1.15)  # room for the labels above the tallest bar
    ax.set(xlabel="component", ylabel="parameters (count)",
           title=title or f"Parameters by component (total {format_count(total)})")
    ax.grid(axis="y", alpha=0.3)
    return figure
