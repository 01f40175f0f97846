"""A text drawn as its tokens."""

from __future__ import annotations

import math

from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ...analysis.compute import token_spans
from .common import add_figure_note, display_label, new_figure


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
    full_width_in = 10.0
    cell_in = full_width_in * 0.94 / chars_per_line
    fontsize = min(14.0, cell_in * 72 / 0.62)  # DejaVu Sans Mono advances 0.6 em per character
    num_ids = sum(len(span.ids) for span in spans)
    ratio = f"{len(text) / num_ids:.2f} characters/token" if num_ids else "no tokens"
    name = getattr(tokenizer, "name", type(tokenizer).__name__)
    default = f"{name}: {num_ids} tokens for {len(text)} characters ({ratio})"
    if truncated:
        default += f"; first {len(placed)} spans shown"
    title = title or default
    symbols = [f"{symbol} marks a {name}" for symbol, name in
               (("␣", "space"), ("⏎", "newline"), ("⇥", "tab"))
               if any(symbol in label for _, _, _, label, _ in placed)]
    note = "In the token boxes, " + ", ".join(symbols) + "." if symbols else ""
    # One line of text gets a figure as wide as its spans (and its title and note), not the
    # full width: a short text would otherwise sit in a wide empty strip.
    columns = chars_per_line
    if lines == 1:
        used = max((x + width for x, _, width, _, _ in placed), default=1)
        words_in = max(len(title) * 10, len(note) * 7) * 0.62 / 72 + 0.3  # at 10 / 7 points
        # at least 5.5 in: room for a one-line note an explorer adds under its static figure
        columns = min(chars_per_line, max(used + 0.5, max(words_in, 5.5) / cell_in))
    width_in = full_width_in * columns / chars_per_line
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
    ax.set_xlim(0, columns)
    ax.set_ylim(lines * line_height, 0)  # first line at the top
    ax.set_axis_off()  # a text layout: the grid coordinates carry no meaning for the reader
    ax.set_title(title, fontsize=10, loc="left")
    if note:
        add_figure_note(figure, note)
    return figure
