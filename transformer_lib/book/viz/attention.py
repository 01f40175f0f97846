"""Attention maps drawn as heatmaps: one map, a grid of layers x heads."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory, offset_copy

from ...analysis.compute import attention_maps_for_text
from .common import (
    _CHAR_WIDTH_EM,
    _MIN_GRID_LABEL_PT,
    _MIN_LABEL_PT,
    MASKED_COLOUR,
    MAX_FIGURE_HEIGHT_IN,
    MAX_FIGURE_WIDTH_IN,
    NotebookFigure,
    _check_index,
    _label_extent_pt,
    _select,
    _thinned_ticks,
    token_labels,
)


def _as_numpy_maps(attentions, batch_index: int) -> list[np.ndarray]:
    """Per-layer attention maps as float arrays (H, T, T) for one batch element."""
    if isinstance(attentions, (torch.Tensor, np.ndarray)):
        attentions = [attentions]  # a single layer
    if not isinstance(attentions, Sequence) or not attentions:
        raise TypeError("attentions must be a non-empty list of tensors, one per layer, each "
                        "(B, H, T, T) or (H, T, T), as returned by model.attention_maps")
    maps = []
    for layer, weights in enumerate(attentions):
        if isinstance(weights, torch.Tensor):
            weights = weights.detach().float().cpu().numpy()
        weights = np.asarray(weights, dtype=np.float32)
        if weights.ndim == 4:
            batch_index = _check_index("batch", batch_index, weights.shape[0], "the batch")
            weights = weights[batch_index]
        if weights.ndim != 3 or weights.shape[-1] != weights.shape[-2]:
            raise ValueError(f"layer {layer}: attention must be (B, H, T, T) or (H, T, T), got "
                             f"shape {tuple(weights.shape)}")
        if maps and weights.shape != maps[0].shape:
            raise ValueError(f"layer {layer}: attention shape {tuple(weights.shape)} differs from "
                             f"layer 0's {tuple(maps[0].shape)}")
        maps.append(weights)
    return maps


def draw_attention_heatmap(ax, weights: np.ndarray, labels: Sequence[str], *, vmax: float = 1.0,
                           ticks: Sequence[int] | None = None, fontsize: float = 6.0,
                           show_x: bool = True, show_y: bool = True):
    """Draw one (T, T) attention map on ``ax`` with token labels along both axes.

    Masked future cells are drawn in flat grey. Labels are plain text artists rather than tick
    labels: 2T tick objects made a 64-token redraw twice as slow.
    """
    count = weights.shape[-1]
    future = np.triu(np.ones((count, count), dtype=bool), k=1)
    # Grey out exactly-zero weights above the diagonal so the causal triangle stands out, while a
    # (buggy) non-causal map would still show its non-zero future weights.
    masked = np.ma.masked_where(future & (weights == 0), weights)
    cmap = colormaps["viridis"].with_extremes(bad=MASKED_COLOUR)
    image = ax.imshow(masked, cmap=cmap, vmin=0.0, vmax=vmax, interpolation="nearest",
                      aspect="equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ticks = range(count) if ticks is None else ticks
    extent_pt = _label_extent_pt([labels[i] for i in ticks], fontsize)
    figure = ax.figure
    if show_x:  # x in data coordinates, y just below the axes
        below = offset_copy(blended_transform_factory(ax.transData, ax.transAxes), figure,
                            y=-2, units="points")
        for i in ticks:
            ax.text(i, 0, labels[i], transform=below, rotation=90, ha="center", va="top",
                    fontsize=fontsize)
        ax.set_xlabel("key token (attended to)", labelpad=extent_pt + 2)
    if show_y:  # y in data coordinates, x just left of the axes
        left = offset_copy(blended_transform_factory(ax.transAxes, ax.transData), figure,
                           x=-2, units="points")
        for i in ticks:
            ax.text(0, i, labels[i], transform=left, ha="right", va="center", fontsize=fontsize)
        ax.set_ylabel("query token (attending)", labelpad=extent_pt + 2)
    return image


def plot_attention(attentions, tokens: Sequence[str], *, layers=None, heads=None,
                   batch_index: int = 0, max_labels: int = 64, title: str | None = None,
                   vmax: float | None = None) -> Figure:
    """A layers x heads grid of attention heatmaps with token labels on both axes.

    ``attentions`` is what ``model.attention_maps`` returns (one (B, H, T, T) tensor per layer)
    or a single such tensor; ``tokens`` holds one label per position. ``layers``/``heads`` pick
    an index, a list of indices, or None for all. The figure has one axes per heatmap plus one
    colour bar; beyond ``max_labels`` positions only every k-th token is labelled. ``vmax`` fixes
    the top of the colour scale (e.g. 1.0 to show every weight unclipped); by default it is the
    largest weight outside row 0. Panels are titled "layer l, head h"; a single tensor has no
    layer index, so its panels name the head only, and a lone map has no panel title at all.
    """
    single_tensor = isinstance(attentions, (torch.Tensor, np.ndarray))
    maps = _as_numpy_maps(attentions, batch_index)
    num_heads, count, _ = maps[0].shape
    tokens = [str(t) for t in tokens]
    if len(tokens) != count:
        raise ValueError(f"got {len(tokens)} token labels for attention over {count} positions; "
                         f"pass exactly one label per position")
    layer_ids = _select("layer", layers, len(maps), "the model")
    head_ids = _select("head", heads, num_heads, "each layer")
    panels = [(layer, head) for layer in layer_ids for head in head_ids]
    rows, cols = _grid_shape(len(layer_ids), len(head_ids))

    # A fixed layout computed here (not constrained layout, which measures every label twice).
    # Panels shrink until the grid fits the largest figure; the labels are then chosen for the
    # panel size actually drawn (a few passes settle it), so a big grid gets fewer labels at a
    # readable size instead of every label at a size nobody can read.
    title = title or (f"Attention over {count} tokens (row: query, column: key; grey: masked "
                      f"future)")
    largest_in = 5.0 if len(panels) == 1 else 3.6 if len(panels) <= 4 else 2.8
    min_pt = _MIN_LABEL_PT if len(panels) == 1 else _MIN_GRID_LABEL_PT
    gap_w, gap_h = 0.15, 0.3  # inner panels carry no labels, only a title
    panel_titles = not single_tensor or num_heads > 1
    cell_in = largest_in
    for _ in range(3):
        legible = max(1, int(0.8 * cell_in * 72 / min_pt))  # labels that fit at min_pt
        ticks = _thinned_ticks(count, min(max_labels, legible))
        fontsize = float(np.clip(0.8 * cell_in * 72 / len(ticks), min_pt, 9.0))
        margin_in = (_label_extent_pt([tokens[i] for i in ticks], fontsize) + 22) / 72
        left_in, bottom_in, right_in = margin_in, margin_in, 1.1
        width_guess = left_in + cols * cell_in + (cols - 1) * gap_w + right_in
        title_lines = _wrapped(title, width_guess)
        top_in = 0.2 + 0.2 * title_lines.count("\n") + (0.55 if panel_titles else 0.35)
        cell_in = min(largest_in,
                      (MAX_FIGURE_WIDTH_IN - left_in - right_in - (cols - 1) * gap_w) / cols,
                      (MAX_FIGURE_HEIGHT_IN - bottom_in - top_in - (rows - 1) * gap_h) / rows)
    grid_w, grid_h = cols * cell_in + (cols - 1) * gap_w, rows * cell_in + (rows - 1) * gap_h
    width = left_in + grid_w + right_in
    title_lines = _wrapped(title, width)  # the title fits the figure's own width
    top_in = 0.2 + 0.2 * title_lines.count("\n") + (0.55 if panel_titles else 0.35)
    height = bottom_in + grid_h + top_in
    figure = NotebookFigure(figsize=(width, height))
    axes = figure.subplots(rows, cols, squeeze=False, gridspec_kw=dict(
        left=left_in / width, right=(left_in + grid_w) / width, bottom=bottom_in / height,
        top=(bottom_in + grid_h) / height, wspace=gap_w / cell_in, hspace=gap_h / cell_in))

    shown = [maps[layer][head] for layer, head in panels]
    # One colour scale for every panel. Row 0 is left out: the first query can only attend to
    # itself, so its weight is always 1 and would wash out every other weight.
    if vmax is None:
        vmax = max(float(m[1:].max()) if count > 1 else 1.0 for m in shown) or 1.0
    # Panels fill the grid row by row; the last panel of each column carries the key labels.
    last_row = {c: max(r for r in range(rows) if r * cols + c < len(panels))
                for c in range(min(cols, len(panels)))}
    for index, (layer, head) in enumerate(panels):
        r, c = divmod(index, cols)
        ax = axes[r, c]
        image = draw_attention_heatmap(ax, maps[layer][head], tokens, vmax=vmax, ticks=ticks,
                                       fontsize=fontsize, show_x=r == last_row[c],
                                       show_y=c == 0)
        if not single_tensor:
            ax.set_title(f"layer {layer}, head {head}", fontsize=9)
        elif num_heads > 1:
            ax.set_title(f"head {head}", fontsize=9)
    for ax in axes.flat[len(panels):]:  # a wrapped grid's empty places
        ax.set_visible(False)
    # A grid gets each axis title once, centred on the grid: one per row or column overlapped.
    if cols > 1:
        for ax in axes.flat[:len(panels)]:
            ax.set_xlabel("")
        figure.text((left_in + grid_w / 2) / width, 0.05 / height, "key token (attended to)",
                    ha="center", va="bottom", fontsize=10)
    if rows > 1:
        for ax in axes[:, 0]:
            ax.set_ylabel("")
        figure.text(0.05 / width, (bottom_in + grid_h / 2) / height, "query token (attending)",
                    rotation=90, ha="left", va="center", fontsize=10)
    colour_bar_axes = figure.add_axes(((left_in + grid_w + 0.25) / width, bottom_in / height,
                                       0.15 / width, grid_h / height), label="<colorbar>")
    figure.colorbar(image, cax=colour_bar_axes, extend="max" if vmax < 1 else "neither",
                    label="attention weight (probability)")
    figure.suptitle(title_lines, fontsize=_TITLE_PT, y=1 - 0.12 / height, va="top")
    return figure


_TITLE_PT = 10


def _wrapped(title: str, width_in: float) -> str:
    """``title`` broken into lines that fit a figure ``width_in`` wide (at the title's size)."""
    chars = max(10, int(0.92 * width_in * 72 / (_TITLE_PT * _CHAR_WIDTH_EM)))
    return "\n".join(textwrap.wrap(title, chars, break_on_hyphens=False)) or title


def _grid_shape(num_layers: int, num_heads: int) -> tuple[int, int]:
    """(rows, columns) for the panels: layers x heads, or a near-square grid when only one
    layer or one head is shown (a column of four maps would be a tall strip)."""
    if num_layers > 1 and num_heads > 1:
        return num_layers, num_heads
    count = num_layers * num_heads
    if count <= 3:
        return 1, count
    cols = math.ceil(math.sqrt(count))
    return math.ceil(count / cols), cols


def attention_for_text(model, tokenizer, text: str) -> tuple[list[torch.Tensor], list[str]]:
    """Per-layer (H, T, T) CPU attention maps of ``model`` reading ``text``, and token labels."""
    maps, ids = attention_maps_for_text(model, tokenizer, text)
    return maps, token_labels(tokenizer, ids)


def plot_model_attention(model, tokenizer, text: str, *, layers=None, heads=None,
                         max_labels: int = 64) -> Figure:
    """Attention heatmaps of ``model`` reading ``text`` (a grid of layers x heads)."""
    maps, labels = attention_for_text(model, tokenizer, text)
    return plot_attention(maps, labels, layers=layers, heads=heads, max_labels=max_labels)
