"""What each design choice buys: the bits per byte of every seed of every ablation variant."""

from __future__ import annotations

from matplotlib.figure import Figure

from ...analysis.ablations import VariantSummary
from .common import EVAL_COLOUR, TRAIN_COLOUR, new_figure


def plot_ablations(summaries: dict[str, VariantSummary], *, baseline: str = "baseline",
                   title: str = "Validation bits per byte, every seed") -> Figure:
    """One row per variant (best at the top): a dot per seed, a bar at the mean, and the
    baseline's seed range shaded across all rows, so a row outside the band differs by more
    than the seeds do."""
    if not summaries:
        raise ValueError("summaries is empty: pass summarise_ablations(results)")
    if baseline not in summaries:
        raise KeyError(f"no {baseline!r} variant among {sorted(summaries)}")
    order = sorted(summaries.values(), key=lambda s: s.mean)
    figure, axes = new_figure(width=6.4, height=1.0 + 0.28 * len(order))
    ax = axes[0, 0]
    base = summaries[baseline]
    ax.axvspan(base.low, base.high, color=EVAL_COLOUR, alpha=0.15, linewidth=0,
               label=f"{baseline}: seed range")
    for row, summary in enumerate(order):
        colour = EVAL_COLOUR if summary.name == baseline else TRAIN_COLOUR
        ax.scatter(summary.bits_per_byte, [row] * len(summary.bits_per_byte), s=16,
                   color=colour, zorder=3)
        ax.plot([summary.mean] * 2, [row - 0.3, row + 0.3], color=colour, linewidth=2)
    ax.set_yticks(range(len(order)), [s.name for s in order], fontsize=8)
    ax.invert_yaxis()  # the best variant at the top
    ax.set(title=title, xlabel="bits per byte (lower is better)")
    ax.grid(axis="x", alpha=0.3)
    # Best rows at the top sit at the left, worst at the bottom right: the top right is free.
    ax.legend(fontsize=8, loc="upper right")
    return figure


def plot_equal_time_runs(runs: list[dict], *, title: str, x: str = "minutes") -> Figure:
    """Validation bits per byte against training minutes, one line per run (the periodic
    evaluations on a sample of validation windows) and a star per run at its final figure over
    every validation token; one colour per run name. ``runs`` as in five_minute_runs.json.
    ``x="step"`` draws against training steps instead (runs compared at equal steps)."""
    if x not in ("minutes", "step"):
        raise ValueError(f"x={x!r}: draw against 'minutes' or 'step'")
    if not runs:
        raise ValueError("runs is empty: pass book.stored_five_minute_runs()['runs']")
    palette = (TRAIN_COLOUR, EVAL_COLOUR, "tab:green", "tab:red", "tab:purple")
    colours: dict[str, str] = {}
    figure, axes = new_figure(width=6.4, height=4.0)
    ax = axes[0, 0]
    for run in runs:
        name = run["name"]
        first = name not in colours  # label each optimizer's line and star once
        colour = colours.setdefault(name, palette[len(colours) % len(palette)])
        ax.plot([e[x] for e in run["evals"]], [e["val_bpb"] for e in run["evals"]],
                color=colour, marker="o", markersize=3, linewidth=1,
                label=f"{name}, sampled windows" if first else None)
        end = run["train_seconds"] / 60 if x == "minutes" else run["steps"]
        ax.scatter([end], [run["val_bpb"]], marker="*", s=90,
                   color=colour, zorder=3, label=f"{name}, every token (final)" if first else None)
    ax.set(title=title, xlabel="training time (minutes)" if x == "minutes" else "training steps",
           ylabel="validation bits per byte (lower is better)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure
