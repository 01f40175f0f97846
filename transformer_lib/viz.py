"""The book's plots: one helper per kind of plot, each returning a matplotlib ``Figure``.

Every function builds a fresh ``Figure`` object (a :class:`NotebookFigure`, never a pyplot
figure), so nothing is registered with pyplot, no state leaks between calls, and a notebook
displays the returned figure exactly once. Nothing here calls ``plt.show``, closes figures or
selects a backend.

Token strings are shown through :func:`display_label`, which makes whitespace visible, escapes
``$`` (matplotlib would otherwise parse it as maths) and writes characters the font lacks as
their code point (``U+1F642``), so no plot of arbitrary text emits a "missing glyph" warning.
"""

from __future__ import annotations

import io
import math
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from matplotlib import colormaps, font_manager
from matplotlib.figure import Figure
from matplotlib.ft2font import FT2Font
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import EngFormatter, FuncFormatter, MaxNLocator, NullFormatter
from matplotlib.transforms import blended_transform_factory, offset_copy

from .generation import filter_logits
from .model import eval_mode, parameter_counts
from .rope import apply_rope, rope_frequencies, rope_tables

MAX_FIGURE_WIDTH_IN = 12.0  # fits a notebook column at the default 100 dpi
MAX_FIGURE_HEIGHT_IN = 10.0

TRAIN_KEYS = ("step", "tokens", "elapsed_s", "loss", "lr")
EVAL_KEYS = ("step", "tokens", "elapsed_s", "val_loss", "val_bpb")
TRAINING_X_AXES = {"step": "optimizer step", "tokens": "tokens seen"}

# One colour per meaning, shared by every plot (and by the widgets that draw through them).
TRAIN_COLOUR = "tab:blue"
EVAL_COLOUR = "tab:orange"
KEPT_COLOUR = "tab:blue"
CUT_COLOURS = {"top-k": "0.72", "top-p": "tab:orange", "greedy": "0.85"}
MASKED_COLOUR = "0.93"  # the causally masked (future) cells of an attention map


# ----------------------------------------------------------------------------- shared helpers


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


def check_tokenizer(tokenizer) -> None:
    """Raise a TypeError unless ``tokenizer`` has the encode/decode interface the plots use."""
    missing = [name for name in ("encode", "decode") if not callable(getattr(tokenizer, name, None))]
    if missing:
        raise TypeError(f"tokenizer {type(tokenizer).__name__} lacks {', '.join(missing)}(); "
                        f"any object with encode(text) -> list[int] and decode(ids) -> str works")


def decode_piece(tokenizer, token_id: int) -> str:
    """Decode one id on its own; an id the tokenizer cannot decode becomes ``<id>``.

    An ordinary token is read from ``token_bytes`` where the tokenizer has it: a sentencepiece
    tokenizer (llama2.c's) drops the leading space of a lone piece when decoding, but the space
    is part of the token and a label must show it.
    """
    token_id = int(token_id)
    token_bytes = getattr(tokenizer, "token_bytes", None)
    special = set(getattr(tokenizer, "special_tokens", {}).values())
    if callable(token_bytes) and token_id not in special:
        try:
            return token_bytes(token_id).decode("utf-8", errors="replace")
        except Exception:  # an id outside the vocabulary: fall through to the label below
            pass
    try:
        return tokenizer.decode([token_id])
    # Tokenizers raise many different errors for ids outside their vocabulary (the model's
    # vocab_size may exceed the tokenizer's); a plot label must not crash on one.
    except Exception:
        return f"<{int(token_id)}>"


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


# ----------------------------------------------------------------------------- attention


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


_CHAR_WIDTH_EM = 0.62  # average advance of a DejaVu Sans character, in font sizes
_MIN_LABEL_PT = 4.5  # smaller token labels cannot be read at 100 dpi
_MIN_GRID_LABEL_PT = 6.0  # in a grid of small panels, thin the labels rather than shrink them


def _label_extent_pt(labels: Sequence[str], fontsize: float) -> float:
    """Rough length in points of the longest label, to reserve room without measuring text."""
    return max((len(label) for label in labels), default=1) * fontsize * _CHAR_WIDTH_EM + 3


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
    rows, cols = len(layer_ids), len(head_ids)

    # A fixed layout computed here (not constrained layout, which measures every label twice).
    # Panels shrink until the grid fits the largest figure; the labels are then chosen for the
    # panel size actually drawn (a few passes settle it), so a big grid gets fewer labels at a
    # readable size instead of every label at a size nobody can read.
    largest_in = 5.0 if rows * cols == 1 else 2.8
    min_pt = _MIN_LABEL_PT if rows * cols == 1 else _MIN_GRID_LABEL_PT
    gap_w, gap_h = 0.15, 0.3  # inner panels carry no labels, only a title
    cell_in = largest_in
    for _ in range(3):
        legible = max(1, int(0.8 * cell_in * 72 / min_pt))  # labels that fit at min_pt
        ticks = _thinned_ticks(count, min(max_labels, legible))
        fontsize = float(np.clip(0.8 * cell_in * 72 / len(ticks), min_pt, 9.0))
        margin_in = (_label_extent_pt([tokens[i] for i in ticks], fontsize) + 22) / 72
        left_in, bottom_in, top_in, right_in = margin_in, margin_in, 0.75, 1.1
        cell_in = min(largest_in,
                      (MAX_FIGURE_WIDTH_IN - left_in - right_in - (cols - 1) * gap_w) / cols,
                      (MAX_FIGURE_HEIGHT_IN - bottom_in - top_in - (rows - 1) * gap_h) / rows)
    grid_w, grid_h = cols * cell_in + (cols - 1) * gap_w, rows * cell_in + (rows - 1) * gap_h
    width, height = left_in + grid_w + right_in, bottom_in + grid_h + top_in
    figure = NotebookFigure(figsize=(width, height))
    axes = figure.subplots(rows, cols, squeeze=False, gridspec_kw=dict(
        left=left_in / width, right=(left_in + grid_w) / width, bottom=bottom_in / height,
        top=(bottom_in + grid_h) / height, wspace=gap_w / cell_in, hspace=gap_h / cell_in))

    shown = [maps[layer][head] for layer in layer_ids for head in head_ids]
    # One colour scale for every panel. Row 0 is left out: the first query can only attend to
    # itself, so its weight is always 1 and would wash out every other weight.
    if vmax is None:
        vmax = max(float(m[1:].max()) if count > 1 else 1.0 for m in shown) or 1.0
    for r, layer in enumerate(layer_ids):
        for c, head in enumerate(head_ids):
            ax = axes[r, c]
            image = draw_attention_heatmap(ax, maps[layer][head], tokens, vmax=vmax, ticks=ticks,
                                           fontsize=fontsize, show_x=r == rows - 1,
                                           show_y=c == 0)
            if not single_tensor:
                ax.set_title(f"layer {layer}, head {head}", fontsize=9)
            elif num_heads > 1:
                ax.set_title(f"head {head}", fontsize=9)
    # A grid gets each axis title once, centred on the grid: one per row or column overlapped.
    if cols > 1:
        for ax in axes[-1]:
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
    figure.suptitle(title or f"Attention over {count} tokens (row: query, column: key; "
                             f"grey: masked future)", fontsize=10, y=1 - 0.12 / height, va="top")
    return figure


def attention_for_text(model, tokenizer, text: str) -> tuple[list[torch.Tensor], list[str]]:
    """Run ``model.attention_maps`` on ``text``: per-layer (H, T, T) CPU maps and token labels."""
    check_tokenizer(tokenizer)
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    ids = list(tokenizer.encode(text))
    if not ids:
        raise ValueError("the text encodes to no tokens; type at least one character")
    max_len = model.config.max_seq_len
    if len(ids) > max_len:
        raise ValueError(f"the text is {len(ids)} tokens but the model's max_seq_len is "
                         f"{max_len}; shorten it")
    device = next(model.parameters()).device
    with eval_mode(model):  # dropout off: the plot shows the weights used at inference
        maps = model.attention_maps(torch.tensor([ids], dtype=torch.long, device=device))
    return [m[0].float().cpu() for m in maps], token_labels(tokenizer, ids)


def plot_model_attention(model, tokenizer, text: str, *, layers=None, heads=None,
                         max_labels: int = 64) -> Figure:
    """Attention heatmaps of ``model`` reading ``text`` (a grid of layers x heads)."""
    maps, labels = attention_for_text(model, tokenizer, text)
    return plot_attention(maps, labels, layers=layers, heads=heads, max_labels=max_labels)


# ----------------------------------------------------------------------------- RoPE


def _check_head_dim(head_dim: int) -> int:
    if isinstance(head_dim, bool) or not isinstance(head_dim, int) or head_dim <= 0 \
            or head_dim % 2:
        raise ValueError(f"head_dim={head_dim!r} must be a positive even int (RoPE rotates pairs)")
    return head_dim


def _check_theta(theta: float) -> float:
    if isinstance(theta, bool) or not isinstance(theta, (int, float)) or not theta > 0:
        raise ValueError(f"theta={theta!r} must be a positive number (Llama uses 10000)")
    return float(theta)


def _check_positions(positions) -> np.ndarray:
    positions = np.asarray(list(positions), dtype=np.int64)
    if positions.ndim != 1 or positions.size == 0:
        raise ValueError("positions must be a non-empty sequence of ints")
    if positions.min() < 0:
        raise ValueError(f"positions must be >= 0, got {int(positions.min())}")
    return positions


def rope_rotated_pairs(head_dim: int, positions, theta: float = 10000.0,
                       vector: tuple[float, float] = (1.0, 0.0)) -> np.ndarray:
    """Every pair (x_i, x_{i+D/2}) of a vector after ``apply_rope`` at each position.

    The same 2-d ``vector`` is placed in every pair, rotated by the library's own tables and
    ``apply_rope``. Returns (len(positions), D/2, 2).
    """
    head_dim, theta = _check_head_dim(head_dim), _check_theta(theta)
    positions = _check_positions(positions)
    half = head_dim // 2
    cos, sin = rope_tables(head_dim, int(positions.max()) + 1, theta)  # (P_max, D)
    index = torch.from_numpy(positions)
    x = torch.zeros(1, 1, len(positions), head_dim)  # (B=1, H=1, T, D)
    x[..., :half], x[..., half:] = float(vector[0]), float(vector[1])
    rotated = apply_rope(x, cos[index], sin[index])[0, 0]  # (T, D)
    return torch.stack([rotated[:, :half], rotated[:, half:]], dim=-1).numpy()  # (T, D/2, 2)


def rope_wavelengths(head_dim: int, theta: float = 10000.0) -> np.ndarray:
    """Tokens per full turn of each pair, 2*pi / inverse frequency, shape (D/2,)."""
    head_dim, theta = _check_head_dim(head_dim), _check_theta(theta)
    return (2 * math.pi / rope_frequencies(head_dim, theta)).numpy()


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


def rope_similarity(head_dim: int, max_distance: int, theta: float = 10000.0,
                    kind: str = "constant", num_samples: int = 1, seed: int = 0) -> np.ndarray:
    """q·k after RoPE against relative distance 0..max_distance, normalised to 1 at distance 0.

    The same vector serves as query (at position 0) and key (at position d), so the curve shows
    only what the rotation does. ``kind`` is "constant" (all ones, the RoFormer decay plot) or
    "random" (the mean over ``num_samples`` Gaussian vectors). Shape (max_distance + 1,).
    """
    head_dim, theta = _check_head_dim(head_dim), _check_theta(theta)
    if isinstance(max_distance, bool) or not isinstance(max_distance, int) or max_distance < 1:
        raise ValueError(f"max_distance={max_distance!r} must be an int >= 1")
    if kind == "constant":
        vectors = torch.ones(1, head_dim)
    elif kind == "random":
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples={num_samples!r} must be an int >= 1")
        generator = torch.Generator().manual_seed(seed)
        vectors = torch.randn(num_samples, head_dim, generator=generator)
    else:
        raise ValueError(f"kind={kind!r} must be 'constant' or 'random'")
    count = max_distance + 1
    cos, sin = rope_tables(head_dim, count, theta)  # (T, D)
    x = vectors[:, None, None, :].expand(-1, 1, count, -1)  # (N, 1, T, D): one vector per row
    rotated = apply_rope(x, cos, sin)[:, 0]  # (N, T, D)
    scores = (rotated[:, :1] * rotated).sum(-1).mean(0)  # (T,): q at 0 dotted with k at d
    return (scores / scores[0]).numpy()


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


# ----------------------------------------------------------------------------- tokens


@dataclass(frozen=True)
class TokenSpan:
    """A piece of text and the token id(s) it decodes from (several when a character's bytes
    are split across tokens)."""

    text: str
    ids: tuple[int, ...]


_MAX_UTF8_TOKENS = 4  # a character is at most 4 UTF-8 bytes, so at most 4 tokens share one


def token_spans(tokenizer, text: str) -> list[TokenSpan]:
    """Encode ``text`` and decode each id on its own, merging ids that only decode together.

    A byte-level tokenizer may split one character's UTF-8 bytes across tokens; each of those
    decodes to U+FFFD alone. Such runs are merged with the following ids until they decode
    cleanly, so the spans show real characters instead of replacement marks.
    """
    check_tokenizer(tokenizer)
    ids = [int(i) for i in tokenizer.encode(text)]
    spans, start = [], 0
    while start < len(ids):
        end = start + 1
        piece = decode_piece(tokenizer, ids[start])
        if "\ufffd" in piece:
            for candidate in range(start + 2, min(start + _MAX_UTF8_TOKENS, len(ids)) + 1):
                merged = tokenizer.decode(ids[start:candidate])
                if "\ufffd" not in merged:
                    end, piece = candidate, merged
                    break
        spans.append(TokenSpan(piece, tuple(ids[start:end])))
        start = end
    return spans


def plot_tokens(text: str, tokenizer, *, chars_per_line: int = 60, max_lines: int = 24,
                show_ids: bool = True, title: str | None = None) -> Figure:
    """The text as coloured token spans, each with its id(s) underneath.

    Drawn in a monospace grid (one column per character), so layout needs no text measuring.
    One rectangle per span; ``max_lines`` caps the height for long texts. Spaces, newlines and
    tabs inside a token are drawn as ␣, ⏎ and ⇥ (a note under the plot says which occur), so a
    token's leading space is visible.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if chars_per_line < 8:
        raise ValueError(f"chars_per_line={chars_per_line} is too narrow; use at least 8")
    spans = token_spans(tokenizer, text)
    id_scale = 0.7  # id font size relative to the token font
    line_height = 2.4 if show_ids else 1.4  # in character cells
    placed, column, line, truncated = [], 0, 0, False
    for span in spans:
        label = display_label(span.text, family="monospace")
        id_text = ",".join(map(str, span.ids))
        width = max(len(label), math.ceil(len(id_text) * id_scale) if show_ids else 0, 1)
        if column and column + width > chars_per_line:
            column, line = 0, line + 1
        if line >= max_lines:
            truncated = True
            break
        placed.append((column, line, width, label, id_text))
        column += width + 0.2  # a hair of space between neighbouring spans
        if "\n" in span.text:
            column, line = 0, line + 1  # a newline token ends the line, as in the text
    lines = max(1, min(line + 1, max_lines))
    width_in = 10.0
    cell_in = width_in * 0.94 / chars_per_line
    fontsize = min(14.0, cell_in * 72 / 0.62)  # DejaVu Sans Mono advances 0.6 em per character
    figure, axes = new_figure(width=width_in, height=0.7 + lines * line_height * cell_in * 1.1)
    ax = axes[0, 0]
    palette = colormaps["Pastel1"].colors
    for k, (x, y, width, label, id_text) in enumerate(placed):
        top = y * line_height
        ax.add_patch(Rectangle((x, top), width, 1.2, facecolor=palette[k % len(palette)],
                               edgecolor="0.6", linewidth=0.5))
        ax.text(x + width / 2, top + 0.6, label, ha="center", va="center",
                family="monospace", fontsize=fontsize)
        if show_ids:
            ax.text(x + width / 2, top + 1.75, id_text, ha="center", va="center",
                    family="monospace", fontsize=fontsize * id_scale, color="0.3")
    ax.set_xlim(0, chars_per_line)
    ax.set_ylim(lines * line_height, 0)  # first line at the top
    ax.set_axis_off()  # a text layout: the grid coordinates carry no meaning for the reader
    num_ids = sum(len(span.ids) for span in spans)
    ratio = f"{len(text) / num_ids:.2f} characters/token" if num_ids else "no tokens"
    name = getattr(tokenizer, "name", type(tokenizer).__name__)
    default = f"{name}: {num_ids} tokens for {len(text)} characters ({ratio})"
    if truncated:
        default += f"; first {len(placed)} spans shown"
    ax.set_title(title or default, fontsize=10, loc="left")
    symbols = [f"{symbol} marks a {name}" for symbol, name in
               (("␣", "space"), ("⏎", "newline"), ("⇥", "tab"))
               if any(symbol in label for _, _, _, label, _ in placed)]
    if symbols:
        add_figure_note(figure, "In the token boxes, " + ", ".join(symbols) + ".")
    return figure


# ----------------------------------------------------------------------------- sampling


@dataclass(frozen=True)
class NextTokenChoice:
    """What a sampling setting does to the top of a next-token distribution.

    ``ids``/``probs`` are the most likely tokens and their probabilities after temperature (at
    temperature 0, before it: the untempered softmax). ``cut_by[j]`` is "" for a surviving token
    or the setting that removed it ("top-k", "top-p", "greedy"). ``final_probs`` is the
    renormalised sampling probability (0 for cut tokens). ``num_surviving`` counts survivors over
    the whole vocabulary.
    """

    ids: np.ndarray
    probs: np.ndarray
    cut_by: tuple[str, ...]
    final_probs: np.ndarray
    num_surviving: int
    vocab_size: int
    temperature: float
    top_k: int | None
    top_p: float | None


def next_token_choice(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                      top_p: float | None = None, num_shown: int = 20) -> NextTokenChoice:
    """Apply ``generation.filter_logits`` to one position's logits (V,) and record what each
    setting cut among the ``num_shown`` most likely tokens."""
    logits = torch.as_tensor(logits).detach().float().cpu()
    if logits.dim() != 1:
        raise ValueError(f"logits must be one position's (vocab_size,) vector, got shape "
                         f"{tuple(logits.shape)}; index the last position with logits[0, -1]")
    vocab_size = logits.shape[0]
    final = filter_logits(logits[None], temperature, top_k, top_p)[0]  # (V,)
    survives = torch.isfinite(final)
    if temperature == 0:
        shown_probs = torch.softmax(logits, -1)
        reason = torch.where(survives, 0, 3)  # 3: cut by greedy decoding
    else:
        shown_probs = torch.softmax(logits / temperature, -1)
        after_k = torch.isfinite(filter_logits(logits[None], temperature, top_k, None)[0])
        reason = torch.where(survives, 0, torch.where(after_k, 2, 1))  # 1: top-k, 2: top-p
    final_probs = torch.softmax(final, -1)
    order = torch.argsort(logits, descending=True)[:min(num_shown, vocab_size)]
    names = ("", "top-k", "top-p", "greedy")
    return NextTokenChoice(
        ids=order.numpy(), probs=shown_probs[order].numpy(),
        cut_by=tuple(names[int(r)] for r in reason[order]),
        final_probs=final_probs[order].numpy(), num_surviving=int(survives.sum()),
        vocab_size=vocab_size, temperature=float(temperature), top_k=top_k, top_p=top_p)


def plot_next_token_choice(choice: NextTokenChoice, tokenizer, *,
                           title: str | None = None) -> Figure:
    """Bars of the most likely next tokens, coloured by what cut them; dots show the final
    (renormalised) sampling probability of the survivors. One bar per shown token."""
    check_tokenizer(tokenizer)
    count = len(choice.ids)
    figure, axes = new_figure(width=7.0, height=1.3 + 0.24 * count)
    ax = axes[0, 0]
    rows = np.arange(count)
    colours = [CUT_COLOURS.get(reason, KEPT_COLOUR) for reason in choice.cut_by]
    ax.barh(rows, choice.probs, color=colours, edgecolor="0.4", linewidth=0.4)
    kept = np.array([reason == "" for reason in choice.cut_by], dtype=bool)
    ax.scatter(choice.final_probs[kept], rows[kept], color="black", marker="o", s=14, zorder=3)
    labels = [f"{display_label(decode_piece(tokenizer, i))} ({int(i)})" for i in choice.ids]
    ax.set_yticks(rows, labels, fontsize=8)
    ax.invert_yaxis()  # most likely at the top
    ax.set_xlim(0, max(1e-9, float(max(choice.probs.max(), choice.final_probs.max()))) * 1.08)
    ax.set(xlabel="probability", ylabel="next token (id)")
    legend = [Patch(color=KEPT_COLOUR, label="kept")]
    legend += [Patch(color=CUT_COLOURS[r], label=f"cut by {r}") for r in CUT_COLOURS
               if r in choice.cut_by]
    legend.append(ax.scatter([], [], color="black", marker="o", s=14,
                             label="sampling probability after cuts"))
    ax.legend(handles=legend, fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    setting = "greedy (T=0)" if choice.temperature == 0 else (
        f"T={choice.temperature:g}, top-k={choice.top_k or 'off'}, "
        f"top-p={choice.top_p if choice.top_p is not None else 'off'}")
    ax.set_title(title or f"Next-token distribution, {setting}: {choice.num_surviving} of "
                          f"{choice.vocab_size} tokens survive", fontsize=10)
    return figure


def next_token_logits(model, tokenizer, prompt: str) -> torch.Tensor:
    """The model's logits (V,) for the token after ``prompt``, as a CPU float tensor."""
    check_tokenizer(tokenizer)
    ids = list(tokenizer.encode(prompt))
    if not ids:
        raise ValueError("the prompt encodes to no tokens; type at least one character")
    ids = ids[-model.config.max_seq_len:]  # the model conditions on its context window only
    device = next(model.parameters()).device
    with eval_mode(model), torch.no_grad():
        logits = model(torch.tensor([ids], dtype=torch.long, device=device))
    return logits[0, -1].float().cpu()


# ----------------------------------------------------------------------------- training curves


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


def plot_training_curves(records, *, x: str = "step", title: str | None = None) -> Figure:
    """Loss (train and validation), validation bits per byte and learning rate against steps or
    tokens, from the trainer's records. Three axes; a panel with no data says so."""
    if x not in TRAINING_X_AXES:
        raise ValueError(f"x={x!r} must be one of {', '.join(TRAINING_X_AXES)}")
    series = _training_series(records)
    train, evals = series["train"], series["eval"]
    # A fixed layout: the live dashboard redraws this inside the training loop.
    figure, axes = new_figure(1, 3, width=12.0, height=3.6, layout=None)
    figure.subplots_adjust(left=0.06, right=0.99, bottom=0.15, top=0.8, wspace=0.25)
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
        colour = colormaps["tab10"].colors[index]
        ax.plot(x, values, color=colour, linewidth=1, label=label)
        over = values > threshold
        ax.plot(x[over], values[over], color=colour, marker="x", linestyle="none",
                label=f"{label}: {int(over.sum())} steps above {threshold:g}")
    ax.axhline(threshold, color="0.5", linestyle="--", linewidth=1)
    ax.set(title=title, xlabel="optimizer step", ylabel="global gradient norm (L2)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure


# ----------------------------------------------------------------------------- parameters


def format_count(value: int) -> str:
    """12 -> '12', 131_392 -> '131.4 k', 22_505_984 -> '22.5 M'."""
    return str(int(value)) if abs(value) < 1000 else EngFormatter(places=1)(value)


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


# ----------------------------------------------------------------------------- generic plots


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


# ----------------------------------------------------------------------------- inside a model


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
