"""Per-head scores and the logit lens, drawn (chapter 11)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure

from .common import MAX_FIGURE_WIDTH_IN, display_label, new_figure


def plot_head_scores(scores: Mapping[str, object], *, title: str, value_label: str,
                     vmin: float | None = None, vmax: float | None = None,
                     annotate: str = "{:.2f}", cmap: str = "viridis") -> Figure:
    """One layer x head heatmap per named score (each (L, H)), every cell labelled with its value.

    All panels share one colour scale (``vmin``/``vmax``, by default the scores' range), so a
    previous-token score of 0.6 and an induction score of 0.6 look the same.
    """
    if not isinstance(scores, Mapping) or not scores:
        raise ValueError("scores must be a non-empty mapping {name: (layers, heads) array}")
    arrays = {}
    for name, values in scores.items():
        if isinstance(values, torch.Tensor):
            values = values.detach().float().cpu().numpy()
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2:
            raise ValueError(f"score {name!r} must be (layers, heads), got shape {values.shape}")
        arrays[name] = values
    shapes = {values.shape for values in arrays.values()}
    if len(shapes) != 1:
        raise ValueError(f"all scores must have the same (layers, heads) shape, got {shapes}")
    num_layers, num_heads = shapes.pop()
    low = min(float(v.min()) for v in arrays.values()) if vmin is None else vmin
    high = max(float(v.max()) for v in arrays.values()) if vmax is None else vmax
    if high <= low:
        high = low + 1.0
    cell = 0.45
    figure, axes = new_figure(1, len(arrays), width=len(arrays) * (num_heads * cell + 0.9) + 1.2,
                              height=num_layers * cell + 1.6)
    colours = colormaps[cmap]
    for ax, (name, values) in zip(axes[0], arrays.items(), strict=True):
        image = ax.imshow(values, cmap=colours, vmin=low, vmax=high, aspect="equal",
                          interpolation="nearest")
        ax.set_xticks(range(num_heads))
        ax.set_yticks(range(num_layers))
        ax.set(xlabel="head", ylabel="layer", title=name)
        if annotate:
            for (row, col), value in np.ndenumerate(values):
                shade = (value - low) / (high - low)
                ax.text(col, row, annotate.format(value), ha="center", va="center",
                        fontsize=7, color="black" if shade > 0.6 else "white")
    figure.colorbar(image, ax=list(axes[0]), label=value_label, shrink=0.9)
    figure.suptitle(title)
    return figure


def plot_logit_lens(top_probabilities, top_labels: Sequence[Sequence[str]],
                    input_labels: Sequence[str], *, title: str,
                    row_labels: Sequence[str] | None = None) -> Figure:
    """The logit lens as a grid: rows are residual streams (embedding, then each layer), columns
    are input positions; each cell names the top next-token guess read off that stream and is
    coloured by its probability."""
    probabilities = top_probabilities
    if isinstance(probabilities, torch.Tensor):
        probabilities = probabilities.detach().float().cpu().numpy()
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2:
        raise ValueError(f"top_probabilities must be (streams, positions), got shape "
                         f"{probabilities.shape}")
    rows, cols = probabilities.shape
    if len(top_labels) != rows or any(len(row) != cols for row in top_labels):
        raise ValueError(f"top_labels must be {rows} rows of {cols} labels, like the "
                         f"probabilities")
    if len(input_labels) != cols:
        raise ValueError(f"got {len(input_labels)} input labels for {cols} positions")
    row_labels = list(row_labels) if row_labels is not None else \
        ["embedding"] + [f"after layer {i}" for i in range(rows - 1)]
    if len(row_labels) != rows:
        raise ValueError(f"got {len(row_labels)} row labels for {rows} rows")
    figure, axes = new_figure(width=min(MAX_FIGURE_WIDTH_IN, 1.2 + 0.85 * cols),
                              height=1.6 + 0.4 * rows)
    ax = axes[0, 0]
    image = ax.imshow(probabilities, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto",
                      interpolation="nearest")
    for (row, col), value in np.ndenumerate(probabilities):
        ax.text(col, row, display_label(str(top_labels[row][col])), ha="center", va="center",
                fontsize=7, color="white" if value > 0.6 else "black")
    ax.set_xticks(range(cols), [display_label(str(label)) for label in input_labels],
                  rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(rows), row_labels, fontsize=8)
    ax.set(xlabel="input token (the guess is for the token after it)",
           ylabel="residual stream read", title=title)
    figure.colorbar(image, ax=ax, label="probability of the top guess")
    return figure
