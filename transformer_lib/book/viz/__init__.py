"""The book's plots: one helper per kind of plot, each returning a matplotlib ``Figure``.

Split by subject (common, attention, rope, tokens, sampling, training, parameters, heads); the
numbers behind the figures come from :mod:`transformer_lib.analysis.compute`. Every public name
is re-exported here, so ``from transformer_lib.book import viz; viz.plot_tokens(...)`` works.
"""

from ...analysis.compute import (
    NextTokenChoice,
    TokenSpan,
    attention_maps_for_text,
    check_tokenizer,
    decode_piece,
    next_token_choice,
    next_token_logits,
    rope_rotated_pairs,
    rope_similarity,
    rope_wavelengths,
    token_spans,
)
from .ablations import plot_ablations, plot_equal_time_runs
from .adaptation import ADAPTATION_KEYS, plot_adaptation_results
from .attention import (
    attention_for_text,
    draw_attention_heatmap,
    plot_attention,
    plot_model_attention,
)
from .common import (
    CUT_COLOURS,
    EVAL_COLOUR,
    KEPT_COLOUR,
    MASKED_COLOUR,
    MAX_FIGURE_HEIGHT_IN,
    MAX_FIGURE_WIDTH_IN,
    TRAIN_COLOUR,
    NotebookFigure,
    add_figure_note,
    display_label,
    figure_to_png,
    format_count,
    new_figure,
    plot_bars,
    plot_lines,
    token_labels,
)
from .hardware import plot_roofline
from .heads import plot_head_scores, plot_logit_lens
from .parameters import plot_parameter_counts
from .rope import (
    plot_rope_angles,
    plot_rope_pair_energy,
    plot_rope_rotation,
    plot_rope_similarity,
    plot_rope_spectrum,
)
from .sampling import plot_next_token_choice
from .tokens import plot_tokens
from .training import (
    EVAL_KEYS,
    TRAIN_KEYS,
    TRAINING_X_AXES,
    plot_bits_per_byte_ladder,
    plot_gradient_norms,
    plot_training_curves,
    validate_training_record,
)

__all__ = [
    "ADAPTATION_KEYS",
    "CUT_COLOURS",
    "EVAL_COLOUR",
    "EVAL_KEYS",
    "KEPT_COLOUR",
    "MASKED_COLOUR",
    "MAX_FIGURE_HEIGHT_IN",
    "MAX_FIGURE_WIDTH_IN",
    "NextTokenChoice",
    "NotebookFigure",
    "TRAINING_X_AXES",
    "TRAIN_COLOUR",
    "TRAIN_KEYS",
    "TokenSpan",
    "add_figure_note",
    "attention_for_text",
    "plot_adaptation_results",
    "attention_maps_for_text",
    "check_tokenizer",
    "decode_piece",
    "display_label",
    "draw_attention_heatmap",
    "figure_to_png",
    "format_count",
    "new_figure",
    "next_token_choice",
    "next_token_logits",
    "plot_ablations",
    "plot_equal_time_runs",
    "plot_attention",
    "plot_bars",
    "plot_bits_per_byte_ladder",
    "plot_gradient_norms",
    "plot_head_scores",
    "plot_lines",
    "plot_logit_lens",
    "plot_model_attention",
    "plot_next_token_choice",
    "plot_parameter_counts",
    "plot_rope_angles",
    "plot_roofline",
    "plot_rope_pair_energy",
    "plot_rope_rotation",
    "plot_rope_similarity",
    "plot_rope_spectrum",
    "plot_tokens",
    "plot_training_curves",
    "rope_rotated_pairs",
    "rope_similarity",
    "rope_wavelengths",
    "token_labels",
    "token_spans",
    "validate_training_record",
]
