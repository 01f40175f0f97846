"""RoPE drawn: rotating pairs, angles, the wavelength spectrum, similarity by distance."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ...analysis.compute import (
    _check_head_dim,
    _check_positions,
    _check_theta,
    rope_rotated_pairs,
    rope_similarity,
    rope_wavelengths,
)
from ...model.rope import rope_frequencies
from .common import _check_index, _select, _thinned_ticks, new_figure


def plot_rope_rotation(head_dim: int = 64, pair: int = 0, positions=range(9),
                       theta: float = 10000.0, vector: tuple[float, float] = (1.0, 0.0),
                       max_labels: int = 16) -> Figure:
    """One pair of a vector drawn as an arrow per position: RoPE turns it by a fixed angle per
    token. The last position is drawn bold (the widget's current position)."""
    head_dim = _check_head_dim(head_dim)
    pair = _check_index("pair", pair, head_dim // 2, f"head_dim={head_dim}")
    positions = _check_positions(positions)
    points = rope_rotated_pairs(head_dim, positions, theta, vector)[:, pair]  # (P, 2)
    radius = float(np.hypot(*vector)) or 1.0
    frequency = float(rope_frequencies(head_dim, theta)[pair])
    figure, axes = new_figure(width=5.0, height=5.0)
    ax = axes[0, 0]
    circle = np.linspace(0, 2 * math.pi, 200)
    ax.plot(radius * np.cos(circle), radius * np.sin(circle), color="0.75", linewidth=1)
    colours = colormaps["viridis"](np.linspace(0, 0.9, len(positions)))
    labelled = set(_thinned_ticks(len(positions), max_labels).tolist()) | {len(positions) - 1}
    for k, (position, (x, y)) in enumerate(zip(positions, points, strict=True)):
        current = k == len(positions) - 1
        ax.arrow(0, 0, x, y, width=0.012 * radius * (2.5 if current else 1),
                 head_width=0.07 * radius, length_includes_head=True, color=colours[k],
                 alpha=1.0 if current else 0.6, zorder=3 if current else 2)
        if k in labelled:
            ax.annotate(str(position), (x * 1.1, y * 1.1), ha="center", va="center", fontsize=8,
                        fontweight="bold" if current else "normal")
    limit = 1.3 * radius
    ax.set(xlim=(-limit, limit), ylim=(-limit, limit), aspect="equal",
           xlabel=f"dimension {pair} (component value)",
           ylabel=f"dimension {pair + head_dim // 2} (component value)")
    ax.grid(alpha=0.3)
    ax.set_title(f"RoPE pair {pair} of head_dim={head_dim}: {frequency:.3g} rad/token\n"
                 f"(one turn every {2 * math.pi / frequency:.3g} tokens; position "
                 f"{positions[-1]} in bold)", fontsize=10)
    return figure


def _default_pairs(head_dim: int, count: int = 4) -> list[int]:
    """A spread of pair indices from the fastest to the slowest rotating."""
    return sorted({int(round(i)) for i in np.linspace(0, head_dim // 2 - 1, count)})


def plot_rope_angles(head_dim: int = 64, pairs: Sequence[int] | None = None,
                     max_position: int = 64, theta: float = 10000.0) -> Figure:
    """Rotation angle against position for several pairs: fast pairs wrap often, slow ones
    barely move. One line per pair."""
    head_dim = _check_head_dim(head_dim)
    if isinstance(max_position, bool) or not isinstance(max_position, int) or max_position < 1:
        raise ValueError(f"max_position={max_position!r} must be an int >= 1")
    pairs = _default_pairs(head_dim) if pairs is None else \
        _select("pair", list(pairs), head_dim // 2, f"head_dim={head_dim}")
    positions = np.arange(max_position + 1)
    points = rope_rotated_pairs(head_dim, positions, theta)  # (P, D/2, 2)
    wavelengths = rope_wavelengths(head_dim, theta)
    figure, axes = new_figure(width=9.0, height=4.0)
    ax = axes[0, 0]
    for pair in pairs:
        angle = np.arctan2(points[:, pair, 1], points[:, pair, 0])  # wrapped to (-pi, pi]
        # Break the line where the angle wraps (a NaN between the two points), instead of
        # drawing a vertical jump across the plot.
        wraps = np.flatnonzero(np.abs(np.diff(angle)) > math.pi) + 1
        ax.plot(np.insert(positions.astype(float), wraps, np.nan),
                np.insert(angle, wraps, np.nan), marker="." if max_position <= 64 else None,
                label=f"pair {pair} (turn every {wavelengths[pair]:.3g} tokens)")
    ax.set(xlabel="position (tokens)", ylabel="rotation angle (rad, wrapped to (−π, π])",
           ylim=(-math.pi * 1.05, math.pi * 1.05),
           title=f"RoPE rotation angle vs position (head_dim={head_dim}, θ={theta:g})")
    ax.set_yticks([-math.pi, -math.pi / 2, 0, math.pi / 2, math.pi],
                  ["−π", "−π/2", "0", "π/2", "π"])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside, not over, lines
    return figure


def plot_rope_spectrum(head_dim: int = 64, theta: float | Sequence[float] = 10000.0,
                       context_length: int | None = None) -> Figure:
    """Wavelength (tokens per turn) of every pair on a log scale; one line per theta, plus a
    dashed line at ``context_length`` if given (pairs above it never complete a turn)."""
    head_dim = _check_head_dim(head_dim)
    thetas = [theta] if isinstance(theta, (int, float)) else [_check_theta(t) for t in theta]
    if not thetas:
        raise ValueError("theta must be a positive number or a non-empty list of them")
    figure, axes = new_figure(width=7.0, height=4.0)
    ax = axes[0, 0]
    pairs = np.arange(head_dim // 2)
    for value in thetas:
        ax.plot(pairs, rope_wavelengths(head_dim, value), marker=".", label=f"θ = {value:g}")
    if context_length is not None:
        ax.axhline(context_length, color="0.4", linestyle="--", linewidth=1,
                   label=f"context length ({context_length} tokens)")
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # pairs are whole numbers
    ax.set(xlabel=f"pair index i (dimensions i and i + {head_dim // 2})",
           ylabel="wavelength (tokens per full turn, log scale)",
           title=f"RoPE frequency spectrum (head_dim={head_dim})")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return figure


def plot_rope_similarity(head_dim: int = 64, max_distance: int = 256, theta: float = 10000.0,
                         kinds: Sequence[str] = ("constant", "random"),
                         num_samples: int = 1, seed: int = 0) -> Figure:
    """How q·k changes with relative distance once RoPE rotates q and k; one line per kind.

    With many random samples the mean converges to the all-ones curve (E[q_i^2] is the same for
    every dimension), so the default shows one random vector: its own, noisier decay.
    """
    if isinstance(kinds, str):
        kinds = [kinds]
    figure, axes = new_figure(width=7.0, height=4.0)
    ax = axes[0, 0]
    distances = np.arange(max_distance + 1)
    for kind in kinds:
        scores = rope_similarity(head_dim, max_distance, theta, kind, num_samples, seed)
        label = "q = k = all ones" if kind == "constant" else \
            f"q = k random ({num_samples} sample{'s' * (num_samples > 1)})"
        ax.plot(distances, scores, label=label)
    ax.set(xlabel="relative distance (tokens)", ylabel="q·k relative to distance 0",
           title=f"RoPE: query-key similarity vs distance (head_dim={head_dim}, θ={theta:g})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure


def plot_rope_pair_energy(energy: Mapping[str, object], *, head_dim: int,
                          theta: float = 10000.0, context_length: int | None = None,
                          title: str | None = None) -> Figure:
    """Share of the query/key squared norm per RoPE pair (one line per layer), against the pair's
    wavelength on a log axis: the trained-model counterpart of :func:`plot_rope_spectrum`.

    ``energy`` maps a name ("queries", "keys") to an (L, D/2) array whose rows sum to 1. A dashed
    line marks ``context_length``: pairs to its right never complete a turn within the context.
    """
    wavelengths = rope_wavelengths(head_dim, theta)
    if not isinstance(energy, Mapping) or not energy:
        raise ValueError("energy must be a non-empty mapping {name: (layers, pairs) array}")
    figure, axes = new_figure(1, len(energy), width=5.0 * len(energy), height=4.0,
                              sharey=True)
    for ax, (name, values) in zip(axes[0], energy.items(), strict=True):
        if isinstance(values, torch.Tensor):
            values = values.detach().float().cpu().numpy()
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != len(wavelengths):
            raise ValueError(f"{name!r} must be (layers, {len(wavelengths)}) for head_dim="
                             f"{head_dim}, got shape {values.shape}")
        for layer, row in enumerate(values):
            ax.plot(wavelengths, row, marker="o", markersize=4, label=f"layer {layer}")
        if context_length is not None:
            ax.axvline(context_length, color="0.4", linestyle="--", linewidth=1,
                       label=f"context length ({context_length} tokens)")
        ax.set_xscale("log")
        ax.set(xlabel="wavelength of the pair (tokens per full turn, log scale)",
               ylabel="share of squared norm", title=name)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    figure.suptitle(title or f"Which RoPE pairs the {' and '.join(energy)} use "
                             f"(head_dim={head_dim}, θ={theta:g})")
    return figure
