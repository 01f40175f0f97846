"""What a sampling setting keeps of a next-token distribution, drawn."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from ...analysis.compute import NextTokenChoice, check_tokenizer, decode_piece
from .common import CUT_COLOURS, KEPT_COLOUR, display_label, new_figure


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
