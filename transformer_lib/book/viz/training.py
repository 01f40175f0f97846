"""Training curves and gradient norms from the trainer's records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter, FuncFormatter

from .common import EVAL_COLOUR, TRAIN_COLOUR, new_figure

TRAIN_KEYS = ("step", "tokens", "elapsed_s", "loss", "lr")


EVAL_KEYS = ("step", "tokens", "elapsed_s", "val_loss", "val_bpb")


TRAINING_X_AXES = {"step": "optimizer step", "tokens": "tokens seen"}


def validate_training_record(record, index: int | None = None) -> dict:
    """Check one trainer record and return it with numeric fields as plain floats/ints.

    Records of other kinds pass through unchanged, so a trainer may log extra events.
    """
    where = "record" if index is None else f"record {index}"
    if not isinstance(record, Mapping):
        raise TypeError(f"{where} must be a dict, got {type(record).__name__}")
    kind = record.get("kind")
    keys = {"train": TRAIN_KEYS, "eval": EVAL_KEYS}.get(kind)
    if keys is None:
        return dict(record)
    missing = [key for key in keys if key not in record]
    if missing:
        raise ValueError(f"{where} of kind {kind!r} lacks {', '.join(missing)}; a {kind} record "
                         f"needs {', '.join(keys)}")
    clean = dict(record)
    for key in keys:
        clean[key] = int(record[key]) if key in ("step", "tokens") else float(record[key])
    return clean


def _training_series(records) -> dict[str, dict[str, np.ndarray]]:
    """Columns of the train and eval records, keyed by kind then field."""
    rows = {"train": [], "eval": []}
    for index, record in enumerate(records):
        record = validate_training_record(record, index)
        if record.get("kind") in rows:
            rows[record["kind"]].append(record)
    series = {kind: {key: np.array([r[key] for r in kind_rows], dtype=np.float64)
                     for key in (TRAIN_KEYS if kind == "train" else EVAL_KEYS)}
              for kind, kind_rows in rows.items()}
    # How many tokens each evaluation measured (NaN where a record does not say).
    series["eval"]["val_tokens"] = np.array([r.get("val_tokens", np.nan) for r in rows["eval"]],
                                            dtype=np.float64)
    return series


def _eval_groups(evals) -> list[tuple[str, str, np.ndarray]]:
    """(label, marker, row mask) per kind of evaluation: an estimate on part of the validation
    tokens and the evaluation on all of them are different measurements, drawn apart."""
    counts = evals["val_tokens"]
    if counts.size == 0 or np.isnan(counts).any() or np.unique(counts).size == 1:
        return [("validation", "o", np.ones(counts.size, dtype=bool))]
    full = counts == counts.max()
    parts = np.unique(counts[~full])
    part_label = (f"validation, first {int(parts[0]):,} tokens" if parts.size == 1
                  else "validation, part of the tokens")
    return [(part_label, "o", ~full), (f"validation, all {int(counts.max()):,} tokens", "*", full)]


def _single_point_range(values: np.ndarray, fraction: float = 0.1) -> tuple[float, float] | None:
    """A y range of +-fraction around the value when a panel holds one value, else None (auto).

    Matplotlib widens a single point's axis by a few percent of the value's last digits (a
    validation point at 1.8 gets an axis from 1.79 to 1.81), which reads as noise."""
    finite = values[np.isfinite(values)]
    if finite.size == 0 or np.ptp(finite) > 0:
        return None
    value = float(finite[0])
    half = abs(value) * fraction or fraction
    return value - half, value + half


def plot_training_curves(records, *, x: str = "step", title: str | None = None,
                         x_max: float | None = None) -> Figure:
    """Loss (train and validation), validation bits per byte and learning rate against steps or
    tokens, from the trainer's records. Three axes; a panel with no data says so.

    Every panel's x axis starts at 0 and ends at ``x_max`` (the run's last step or token, known
    in advance to a live plot) or else at the last record, so a lone first validation point sits
    on a sensible axis; a panel holding one value gets a y range of +-10% around it."""
    if x not in TRAINING_X_AXES:
        raise ValueError(f"x={x!r} must be one of {', '.join(TRAINING_X_AXES)}")
    if x_max is not None and not x_max > 0:
        raise ValueError(f"x_max={x_max} must be positive (the run's last {x}), or None")
    series = _training_series(records)
    train, evals = series["train"], series["eval"]
    # A fixed layout: the live dashboard redraws this inside the training loop.
    figure, axes = new_figure(1, 3, width=12.0, height=3.6, layout=None)
    figure.subplots_adjust(left=0.06, right=0.99, bottom=0.15, top=0.8, wspace=0.32)
    loss_ax, bpb_ax, lr_ax = axes[0]
    if train["step"].size:
        loss_ax.plot(train[x], train["loss"], color=TRAIN_COLOUR, linewidth=1, label="train")
        lr_ax.plot(train[x], train["lr"], color=TRAIN_COLOUR, linewidth=1)
    for label, marker, rows in _eval_groups(evals) if evals["step"].size else ():
        size = 9 if marker == "*" else 3
        line = "none" if marker == "*" else "-"
        loss_ax.plot(evals[x][rows], evals["val_loss"][rows], color=EVAL_COLOUR, marker=marker,
                     markersize=size, linestyle=line, label=label)
        bpb_ax.plot(evals[x][rows], evals["val_bpb"][rows], color=EVAL_COLOUR, marker=marker,
                    markersize=size, linestyle=line, label=label)
    for ax, has_data, what in ((loss_ax, train["step"].size or evals["step"].size, "records"),
                               (bpb_ax, evals["step"].size, "eval records"),
                               (lr_ax, train["step"].size, "train records")):
        if not has_data:
            ax.text(0.5, 0.5, f"no {what} yet", ha="center", va="center",
                    transform=ax.transAxes, color="0.5")
        ax.set_xlabel(TRAINING_X_AXES[x])
        ax.grid(alpha=0.3)
        if x == "tokens":
            ax.xaxis.set_major_formatter(EngFormatter())
    loss_ax.set(ylabel="cross-entropy (nats/token)", title="Loss")
    if loss_ax.lines:
        loss_ax.legend(fontsize=8)
    bpb_ax.set(ylabel="bits per byte", title="Validation bits per byte")
    if len(bpb_ax.lines) > 1:
        bpb_ax.legend(fontsize=8)
    lr_ax.set(ylabel="learning rate", title="Learning-rate schedule")
    right = x_max or max([*train[x], *evals[x]], default=0) or 1
    for ax in (loss_ax, bpb_ax, lr_ax):
        ax.set_xlim(0, right * 1.02)
    for ax, values in ((bpb_ax, evals["val_bpb"]),
                       (loss_ax, np.concatenate([train["loss"], evals["val_loss"]]))):
        y_range = _single_point_range(values)
        if y_range is not None:
            ax.set_ylim(*y_range)
    # Plain tick values: a "1e-3" offset label would sit on top of the panel title.
    lr_ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.2g}"))
    last = int(max([*train["step"], *evals["step"]], default=0))
    figure.suptitle(title or f"Training curves (up to step {last})")
    return figure


def plot_gradient_norms(x, norms: Mapping[str, Sequence[float]], threshold: float, *,
                        title: str = "Gradient norm before clipping") -> Figure:
    """Global gradient norm per step for one or more runs, the clipping threshold as a dashed
    line, and a cross on every step where a run's norm exceeded it (where clipping engaged)."""
    if not norms:
        raise ValueError("norms is empty: pass {run label: norm per step}")
    if not threshold > 0:
        raise ValueError(f"threshold={threshold} must be positive")
    x = np.asarray(x, dtype=np.float64)
    figure, axes = new_figure(width=7.0, height=4.0)
    ax = axes[0, 0]
    for index, (label, values) in enumerate(norms.items()):
        values = np.asarray(values, dtype=np.float64)
        if values.shape != x.shape:
            raise ValueError(f"run {label!r} has {values.shape[0]} norms but x has {x.shape[0]}")
        colour = f"C{index % 10}"  # the default cycle (tab10), repeated after ten runs
        ax.plot(x, values, color=colour, linewidth=1, label=label)
        over = values > threshold
        ax.plot(x[over], values[over], color=colour, marker="x", linestyle="none",
                label=f"{label}: {int(over.sum())} steps above {threshold:g}")
    ax.axhline(threshold, color="0.5", linestyle="--", linewidth=1)
    ax.set(title=title, xlabel="optimizer step", ylabel="global gradient norm (L2)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure


def plot_bits_per_byte_ladder(ladder: Mapping[str, float], *, models: Sequence[str] = (),
                              title: str = "What the bits per byte mean: a ladder on the same "
                                           "bytes") -> Figure:
    """One bar per rung, worst at the top; ``models`` names the rungs that are trained
    transformers (drawn in the evaluation colour, the counting and compressing baselines in the
    training colour), and each bar is labelled with its value."""
    if not ladder:
        raise ValueError("ladder is empty: pass {rung name: bits per byte}")
    unknown = [name for name in models if name not in ladder]
    if unknown:
        raise KeyError(f"models names rungs not in the ladder: {unknown}")
    bad = {name: value for name, value in ladder.items()
           if not (np.isfinite(value) and value > 0)}
    if bad:
        raise ValueError(f"bits per byte must be finite and positive, got {bad}")
    order = sorted(ladder, key=ladder.get, reverse=True)
    figure, axes = new_figure(width=6.4, height=1.0 + 0.32 * len(order))
    ax = axes[0, 0]
    colours = [EVAL_COLOUR if name in models else TRAIN_COLOUR for name in order]
    bars = ax.barh(range(len(order)), [ladder[name] for name in order], color=colours)
    ax.bar_label(bars, labels=[f"{ladder[name]:.2f}" for name in order], padding=3, fontsize=8)
    ax.set_yticks(range(len(order)), order, fontsize=8)
    ax.invert_yaxis()  # the worst rung at the top, the best at the bottom
    ax.set_xlim(0, 1.12 * max(ladder.values()))
    ax.set(title=title, xlabel="bits per byte (lower is better)")
    ax.grid(axis="x", alpha=0.3)
    return figure
