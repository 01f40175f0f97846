"""Figures, colours, token labels and the plain line/bar plots every chapter uses."""

from __future__ import annotations

import io
import math
import unicodedata
from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np
from matplotlib import font_manager
from matplotlib.figure import Figure
from matplotlib.ft2font import FT2Font
from matplotlib.ticker import EngFormatter, FuncFormatter, NullFormatter

from ...analysis.compute import check_tokenizer, decode_piece

MAX_FIGURE_WIDTH_IN = 12.0  # fits a notebook column at the default 100 dpi


MAX_FIGURE_HEIGHT_IN = 10.0


# One colour per meaning, shared by every plot (and by the widgets that draw through them).
TRAIN_COLOUR = "tab:blue"


EVAL_COLOUR = "tab:orange"


KEPT_COLOUR = "tab:blue"


CUT_COLOURS = {"top-k": "0.72", "top-p": "tab:orange", "greedy": "0.85"}


MASKED_COLOUR = "0.93"  # the causally masked (future) cells of an attention map


class NotebookFigure(Figure):
    """A Figure that a notebook shows as a PNG even if pyplot (and so matplotlib's inline
    display hook) was never imported; where the hook is active it takes over, so still once."""

    def _repr_png_(self) -> bytes:
        return figure_to_png(self, tight=True)


def new_figure(nrows: int = 1, ncols: int = 1, *, width: float = 6.0, height: float = 4.0,
               layout: str | None = "constrained", **subplot_kw) -> tuple[Figure, np.ndarray]:
    """A pyplot-free Figure with an (nrows, ncols) array of axes (constrained layout unless
    ``layout=None``, for plots redrawn often enough that measuring every label twice shows)."""
    figure = NotebookFigure(figsize=(min(width, MAX_FIGURE_WIDTH_IN),
                                     min(height, MAX_FIGURE_HEIGHT_IN)), layout=layout)
    axes = figure.subplots(nrows, ncols, squeeze=False, **subplot_kw)
    return figure, axes


def figure_to_png(figure: Figure, dpi: int = 100, tight: bool = False) -> bytes:
    """Render a figure to PNG bytes (what the widgets and the dashboard send to the browser)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    return buffer.getvalue()


def add_figure_note(figure: Figure, note: str, strip_in: float = 0.3) -> Figure:
    """Grow ``figure`` by a strip at the bottom and write a one-line note there (in place)."""
    width, height = figure.get_size_inches()
    new_height = height + strip_in
    engine = figure.get_layout_engine()
    if engine is None:  # a fixed layout: move every axes up by the strip
        for ax in figure.axes:
            x0, y0, w, h = ax.get_position(original=True).bounds
            ax.set_position((x0, (y0 * height + strip_in) / new_height, w, h * height / new_height))
    else:  # constrained layout: keep it out of the strip (and out of earlier notes' strips)
        x0, y0, w, h = engine.get().get("rect") or (0, 0, 1, 1)
        engine.set(rect=(x0, (y0 * height + strip_in) / new_height, w, h * height / new_height))
    for text in figure.texts:  # figure texts, earlier notes included, move up with the rest
        text.set_y((text.get_position()[1] * height + strip_in) / new_height)
    figure.set_size_inches(width, new_height)
    figure.text(0.01, 0.15 * strip_in / new_height, note, fontsize=7, color="0.35",
                style="italic", ha="left", va="bottom", wrap=True)  # two lines fit the strip
    return figure


@lru_cache(maxsize=8)
def _font_file_codepoints(path: str) -> frozenset[int]:
    return frozenset(FT2Font(path).get_charmap())


def _font_codepoints(family: str) -> frozenset[int]:
    """Code points the font matplotlib now picks for ``family`` can draw (rcParams may change)."""
    return _font_file_codepoints(font_manager.findfont(font_manager.FontProperties(family=[family])))


_WHITESPACE_SYMBOLS = {"\n": "⏎", "\t": "⇥"}  # other control characters become escapes


def display_label(piece: str, *, visible_spaces: bool = True, family: str = "sans-serif") -> str:
    """A token string made safe and readable in a matplotlib text artist.

    Newlines, tabs and (optionally) spaces become visible symbols, ``$`` is escaped so it is not
    read as mathtext; control bytes become ``\\x07`` and other characters the font cannot draw
    their code point, ``U+1F642`` (a readable name, valid for any code point, even above U+FFFF).
    """
    drawable = _font_codepoints(family)
    out = []
    for char in piece:
        if char in _WHITESPACE_SYMBOLS:
            out.append(_WHITESPACE_SYMBOLS[char])
        elif char == " ":
            out.append("␣" if visible_spaces else " ")
        elif char == "$":
            out.append(r"\$")
        elif unicodedata.category(char) == "Cc" or ord(char) not in drawable:
            out.append(f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"U+{ord(char):04X}")
        else:
            out.append(char)
    return "".join(out) or "∅"  # an empty piece (e.g. a special token) still needs a mark


def token_labels(tokenizer, ids: Sequence[int]) -> list[str]:
    """Readable axis labels for a sequence of token ids, one per id.

    A token holding part of a multi-byte character decodes to U+FFFD on its own; where the
    tokenizer offers ``token_bytes(id)``, such a label shows the raw bytes (``\\xe4\\xb8``).
    """
    check_tokenizer(tokenizer)
    token_bytes = getattr(tokenizer, "token_bytes", None)
    labels = []
    for token_id in ids:
        piece = decode_piece(tokenizer, token_id)
        if "\ufffd" in piece and callable(token_bytes):
            piece = token_bytes(int(token_id)).decode("utf-8", errors="backslashreplace")
        labels.append(display_label(piece))
    return labels


def _check_index(name: str, index: int, count: int, what: str) -> int:
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise TypeError(f"{name} index must be an int, got {type(index).__name__} {index!r}")
    if not 0 <= index < count:
        raise ValueError(f"{name} index {index} is out of range: {what} has {count} "
                         f"{name}s (0..{count - 1})")
    return int(index)


def _select(name: str, chosen, count: int, what: str) -> list[int]:
    """None -> all indices; an int -> [it]; a sequence -> validated list."""
    if chosen is None:
        return list(range(count))
    if isinstance(chosen, (int, np.integer)) and not isinstance(chosen, bool):
        return [_check_index(name, chosen, count, what)]
    chosen = [_check_index(name, c, count, what) for c in chosen]
    if not chosen:
        raise ValueError(f"no {name}s selected; pass None for all of them")
    return chosen


def _thinned_ticks(count: int, max_labels: int) -> np.ndarray:
    """Every position when they fit, else every k-th, so long prompts stay legible."""
    step = max(1, math.ceil(count / max_labels))
    return np.arange(0, count, step)


_CHAR_WIDTH_EM = 0.62  # average advance of a DejaVu Sans character, in font sizes


_MIN_LABEL_PT = 4.5  # smaller token labels cannot be read at 100 dpi


_MIN_GRID_LABEL_PT = 6.0  # in a grid of small panels, thin the labels rather than shrink them


def _label_extent_pt(labels: Sequence[str], fontsize: float) -> float:
    """Rough length in points of the longest label, to reserve room without measuring text."""
    return max((len(label) for label in labels), default=1) * fontsize * _CHAR_WIDTH_EM + 3


def format_count(value: int) -> str:
    """12 -> '12', 131_392 -> '131.4 k', 22_505_984 -> '22.5 M'."""
    return str(int(value)) if abs(value) < 1000 else EngFormatter(places=1)(value)


def plot_lines(x, series: Mapping[str, Sequence[float]], *, title: str, xlabel: str,
               ylabel: str, logx: bool = False, logy: bool = False, markers: bool = False,
               reference: float | None = None) -> Figure:
    """Several named curves over one x axis (activation functions, timings against length...).

    ``reference`` draws a dashed horizontal line, e.g. at 1.0 on a ratio plot.
    """
    x = np.asarray(x, dtype=np.float64)
    if not series:
        raise ValueError("series is empty: pass {label: y_values}")
    figure, axes = new_figure(width=6.4, height=4.0)
    ax = axes[0, 0]
    for label, values in series.items():
        values = np.asarray(values, dtype=np.float64)
        if values.shape != x.shape:
            raise ValueError(f"series {label!r} has {values.shape[0]} values but x has "
                             f"{x.shape[0]}")
        ax.plot(x, values, label=label, marker="o" if markers else None, markersize=3)
    if reference is not None:
        ax.axhline(reference, color="0.5", linestyle="--", linewidth=1)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if logx:
        ax.set_xscale("log")
        if len(x) <= 12:  # label the measured points themselves, e.g. 128 256 512, not 10^2
            ax.set_xticks(x)
            ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure


def plot_bars(values: Mapping[str, float], *, title: str, ylabel: str,
              annotate: str = "{:.3g}", logy: bool = False) -> Figure:
    """One bar per named value (timings, memory, speed-ups), each labelled with its value."""
    if not values:
        raise ValueError("values is empty: pass {label: number}")
    names, heights = list(values), [float(v) for v in values.values()]
    figure, axes = new_figure(width=max(4.0, 1.1 * len(names) + 2.0), height=3.8)
    ax = axes[0, 0]
    bars = ax.bar(range(len(names)), heights, color=TRAIN_COLOUR)
    ax.set_xticks(range(len(names)), [display_label(n, visible_spaces=False) for n in names],
                  rotation=20 if max(len(n) for n in names) > 10 else 0, ha="right"
                  if max(len(n) for n in names) > 10 else "center")
    for bar, height in zip(bars, heights, strict=True):
        ax.annotate(annotate.format(height), (bar.get_x() + bar.get_width() / 2, height),
                    ha="center", va="bottom", fontsize=8, xytext=(0, 2),
                    textcoords="offset points")
    if logy:
        ax.set_yscale("log")
    ax.set(title=title, ylabel=ylabel)
    ax.grid(axis="y", alpha=0.3)
    return figure
