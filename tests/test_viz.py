"""Plot helpers: each returns a Figure with the expected axes, labels and artists."""

import math
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrow, Rectangle

from transformer_lib.analysis import compute
from transformer_lib.book import viz
from transformer_lib.model import parameter_counts


def heatmap_axes(figure):
    return [ax for ax in figure.axes if ax.images]


def train_records(steps=10, eval_every=5):
    records = []
    for step in range(steps):
        records.append({"kind": "train", "step": step, "tokens": 1000 * step,
                        "elapsed_s": 0.1 * step, "loss": 5.0 - 0.1 * step, "lr": 1e-3})
        if step % eval_every == eval_every - 1:
            records.append({"kind": "eval", "step": step, "tokens": 1000 * step,
                            "elapsed_s": 0.1 * step, "val_loss": 5.2 - 0.1 * step,
                            "val_bpb": 2.0 - 0.05 * step})
    return records


# --------------------------------------------------------------------------- attention


def test_attention_grid_has_one_heatmap_per_layer_and_head(model, tokenizer):
    text = "Hello, attention!"
    maps, labels = viz.attention_for_text(model, tokenizer, text)
    figure = viz.plot_attention(maps, labels)
    config = model.config
    assert isinstance(figure, Figure)
    heatmaps = heatmap_axes(figure)
    assert len(heatmaps) == config.num_layers * config.num_heads
    assert len(figure.axes) == len(heatmaps) + 1  # plus the colour bar
    assert [ax.get_title() for ax in heatmaps[:2]] == ["layer 0, head 0", "layer 0, head 1"]
    assert figure.get_suptitle().startswith(f"Attention over {len(text)} tokens")
    # Labels on the outer edge only: the bottom-left panel carries both axes' token labels.
    bottom_left = heatmaps[-config.num_heads]
    assert [t.get_text() for t in bottom_left.texts] == labels + labels
    # Each axis title once for the whole grid (per-panel ones overlapped their neighbours).
    assert not bottom_left.get_xlabel() and not bottom_left.get_ylabel()
    grid_titles = [t.get_text() for t in figure.texts]
    assert grid_titles.count("key token (attended to)") == 1
    assert grid_titles.count("query token (attending)") == 1
    assert not heatmaps[1].texts and not heatmaps[1].get_ylabel()
    # The drawn data is the model's, with the causal future masked out.
    drawn = heatmaps[config.num_heads + 2].images[0].get_array()
    np.testing.assert_allclose(drawn.data, maps[1][2].numpy(), atol=1e-6)
    future = np.triu(np.ones(drawn.shape, dtype=bool), k=1)
    assert drawn.mask[future].all() and not drawn.mask[~future].any()


def test_attention_selects_layers_and_heads(model, tokenizer):
    maps, labels = viz.attention_for_text(model, tokenizer, "abc")
    figure = viz.plot_attention(maps, labels, layers=1, heads=[0, 3])
    assert [ax.get_title() for ax in heatmap_axes(figure)] == ["layer 1, head 0",
                                                                "layer 1, head 3"]


def test_attention_accepts_model_output_with_batch_dim(model):
    ids = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    maps = model.attention_maps(ids)  # (B, H, T, T) per layer
    figure = viz.plot_attention(maps, list("abcd"), batch_index=1, layers=0, heads=0)
    np.testing.assert_allclose(heatmap_axes(figure)[0].images[0].get_array().data,
                               maps[0][1, 0].numpy(), atol=1e-6)


def test_attention_single_map_fixed_scale_and_no_stray_title():
    # The causal mask as weights: row i holds 1/(i+1). With vmax=1.0 nothing is clipped (the
    # default scale stops at the largest weight outside row 0, here 0.5), and a lone map that is
    # not from a model carries no "layer 0, head 0" panel title.
    mask = torch.tril(torch.ones(4, 4))
    weights = (mask / mask.sum(dim=-1, keepdim=True))[None, None]  # (1, 1, T, T)
    figure = viz.plot_attention(weights, list("abcd"), vmax=1.0)
    (panel,) = heatmap_axes(figure)
    assert panel.images[0].get_clim() == (0.0, 1.0)
    assert panel.get_title() == ""
    default = heatmap_axes(viz.plot_attention(weights, list("abcd")))[0]
    assert default.images[0].get_clim() == (0.0, 0.5)
    two_heads = viz.plot_attention(torch.cat([weights, weights], dim=1), list("abcd"))
    assert [ax.get_title() for ax in heatmap_axes(two_heads)] == ["head 0", "head 1"]


def test_attention_bad_input_raises_clear_errors(model, tokenizer):
    maps, labels = viz.attention_for_text(model, tokenizer, "abcd")
    with pytest.raises(ValueError, match="3 token labels for attention over 4 positions"):
        viz.plot_attention(maps, labels[:3])
    with pytest.raises(ValueError, match="layer index 2 is out of range"):
        viz.plot_attention(maps, labels, layers=2)
    with pytest.raises(ValueError, match="head index -1 is out of range"):
        viz.plot_attention(maps, labels, heads=[-1])
    with pytest.raises(TypeError, match="head index must be an int"):
        viz.plot_attention(maps, labels, heads=[1.0])
    with pytest.raises(ValueError, match=r"\(B, H, T, T\)"):
        viz.plot_attention([torch.ones(4, 4, 3)], labels)
    with pytest.raises(ValueError, match="no tokens"):
        viz.attention_for_text(model, tokenizer, "")
    with pytest.raises(ValueError, match="max_seq_len"):
        viz.attention_for_text(model, tokenizer, "x" * (model.config.max_seq_len + 1))


def test_attention_thins_labels_for_long_prompts():
    count = 100
    weights = torch.softmax(torch.randn(1, 2, count, count), -1)
    figure = viz.plot_attention([weights], [f"t{i}" for i in range(count)], max_labels=25)
    ax = heatmap_axes(figure)[0]
    shown = [t.get_text() for t in ax.texts]
    assert 0 < len(shown) <= 2 * 25 and shown[:2] == ["t0", "t4"]


def test_attention_grid_thins_labels_rather_than_shrinking_them():
    count = 22  # a 4 x 4 grid of 22-token maps: every label would be under 5 points
    weights = torch.softmax(torch.randn(4, 4, count, count), -1)
    figure = viz.plot_attention(list(weights), [f"t{i}" for i in range(count)])
    bottom_left = heatmap_axes(figure)[-4]
    sizes = {t.get_fontsize() for t in bottom_left.texts}
    assert min(sizes) >= 6.0
    assert 0 < len(bottom_left.texts) < 2 * count  # some labels left out, the first one kept
    assert bottom_left.texts[0].get_text() == "t0"


def test_plot_model_attention_labels_tokens_readably(model, tokenizer):
    figure = viz.plot_model_attention(model, tokenizer, "a b$", layers=0, heads=0)
    assert [t.get_text() for t in heatmap_axes(figure)[0].texts][:4] == ["a", "␣", "b", r"\$"]


def test_display_label_makes_text_safe_to_draw():
    assert viz.display_label("a b") == "a␣b"
    assert viz.display_label("a b", visible_spaces=False) == "a b"
    assert viz.display_label("\n\t") == "⏎⇥"
    assert viz.display_label("$x$") == r"\$x\$"  # not mathtext
    assert viz.display_label("\x00") == r"\x00"
    assert viz.display_label("世") == "U+4E16"  # no glyph in DejaVu Sans: its code point
    assert viz.display_label("🙂!") == "U+1F642!"  # above U+FFFF too (not an invalid \u1f642)
    assert viz.display_label("é·") == "é·"  # characters the font has are drawn as themselves
    assert viz.display_label("") == "∅"


def test_awkward_tokens_draw_without_warnings(tokenizer):
    text = "cost $5\n\tnaïve 世界 😀 \x07"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing glyph or mathtext error would fail here
        viz.figure_to_png(viz.plot_tokens(text, tokenizer), dpi=30)
        ids = tokenizer.encode(text)
        weights = torch.softmax(torch.randn(1, len(ids), len(ids)), -1)
        viz.figure_to_png(viz.plot_attention([weights], viz.token_labels(tokenizer, ids)), dpi=30)


# --------------------------------------------------------------------------- RoPE


def test_rope_rotated_pairs_match_closed_form():
    head_dim, theta = 16, 100.0
    points = viz.rope_rotated_pairs(head_dim, [0, 3, 7], theta)
    inverse = theta ** (-np.arange(0, head_dim, 2) / head_dim)
    for k, position in enumerate([0, 3, 7]):
        np.testing.assert_allclose(points[k, :, 0], np.cos(position * inverse), atol=1e-5)
        np.testing.assert_allclose(points[k, :, 1], np.sin(position * inverse), atol=1e-5)


def test_rope_plots_go_through_apply_rope(monkeypatch):
    calls = []
    real_apply_rope = compute.apply_rope

    def spy(x, cos, sin):
        calls.append(x.shape)
        return real_apply_rope(x, cos, sin)

    monkeypatch.setattr(compute, "apply_rope", spy)
    viz.plot_rope_rotation(16, 1, range(4))
    viz.plot_rope_angles(16, [0, 1], max_position=8)
    viz.plot_rope_similarity(16, 8)
    assert len(calls) == 4  # rotation, angles, and one per similarity kind


def test_rope_rotation_draws_one_arrow_per_position():
    figure = viz.plot_rope_rotation(head_dim=16, pair=2, positions=range(6))
    ax = figure.axes[0]
    arrows = [p for p in ax.patches if isinstance(p, FancyArrow)]
    assert len(figure.axes) == 1 and len(arrows) == 6
    assert "pair 2" in ax.get_title() and "rad/token" in ax.get_title()
    assert ax.get_xlabel() == "dimension 2 (component value)"
    assert ax.get_ylabel() == "dimension 10 (component value)"
    assert [t.get_text() for t in ax.texts] == [str(p) for p in range(6)]
    with pytest.raises(ValueError, match="pair index 8 is out of range"):
        viz.plot_rope_rotation(head_dim=16, pair=8)
    with pytest.raises(ValueError, match="head_dim"):
        viz.plot_rope_rotation(head_dim=15)
    with pytest.raises(ValueError, match="positions must be >= 0"):
        viz.plot_rope_rotation(16, 0, [-1, 2])


def test_rope_angles_one_line_per_pair_wrapping_at_pi():
    figure = viz.plot_rope_angles(head_dim=16, pairs=[0, 7], max_position=20)
    ax = figure.axes[0]
    assert len(ax.lines) == 2
    x, y = ax.lines[0].get_data()
    assert y[1] == pytest.approx(1.0, abs=1e-5)  # pair 0 turns 1 rad per token
    assert np.isnan(y).any()  # broken where it wraps past pi
    assert np.nanmax(np.abs(y)) <= math.pi + 1e-6
    assert ax.get_xlabel() == "position (tokens)" and "rad" in ax.get_ylabel()
    assert len(viz.plot_rope_angles(16).axes[0].lines) == 4  # the default spread of pairs


def test_rope_spectrum_is_log_wavelength_per_pair():
    figure = viz.plot_rope_spectrum(head_dim=16, theta=[10000.0, 500000.0], context_length=128)
    ax = figure.axes[0]
    assert ax.get_yscale() == "log" and len(ax.lines) == 3  # two thetas and the context line
    x, y = ax.lines[0].get_data()
    np.testing.assert_allclose(y, 2 * np.pi * 10000.0 ** (np.arange(0, 16, 2) / 16), rtol=1e-5)
    assert "wavelength" in ax.get_ylabel() and "tokens" in ax.get_ylabel()
    with pytest.raises(ValueError, match="theta=0"):
        viz.plot_rope_spectrum(16, theta=0)


def test_rope_similarity_decays_from_one():
    scores = viz.rope_similarity(16, 64, kind="constant")
    inverse = 10000.0 ** (-np.arange(0, 16, 2) / 16)
    expected = np.cos(np.outer(np.arange(65), inverse)).mean(1)
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    assert scores[0] == pytest.approx(1.0) and scores[1:].max() < 1.0
    figure = viz.plot_rope_similarity(16, 64)
    assert len(figure.axes[0].lines) == 2
    assert figure.axes[0].get_xlabel() == "relative distance (tokens)"
    with pytest.raises(ValueError, match="kind"):
        viz.rope_similarity(16, 8, kind="zeros")


# --------------------------------------------------------------------------- tokens


def test_token_spans_merge_split_characters(tokenizer):
    text = "né 😀!"
    spans = viz.token_spans(tokenizer, text)
    assert "".join(span.text for span in spans) == text
    assert [span.ids for span in spans] == [(110,), (195, 169), (32,), (240, 159, 152, 128),
                                            (33,)]


def test_plot_tokens_one_box_per_span_with_ids(tokenizer):
    figure = viz.plot_tokens("hi é", tokenizer)
    ax = figure.axes[0]
    boxes = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(boxes) == 4
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["h", "104", "i", "105", "␣", "32", "é", "195,169"]  # the space is visible
    assert ax.get_title(loc="left") == "bytes: 5 tokens for 4 characters (0.80 characters/token)"
    assert [t.get_text() for t in figure.texts] == ["In the token boxes, ␣ marks a space."]
    no_spaces = viz.plot_tokens("hi", tokenizer, show_ids=False)
    assert len(no_spaces.axes[0].texts) == 2 and not no_spaces.texts  # no symbol, no note


def test_plot_tokens_shows_leading_spaces_newlines_and_emoji_readably():
    class WordTokenizer:  # " cat" is one token with its leading space, as in a real BPE
        name = "words"
        pieces = [" cat", "\n", "🙂"]

        def encode(self, text):
            return [0, 1, 2]

        def decode(self, ids):
            return "".join(self.pieces[i] for i in ids)

    figure = viz.plot_tokens(" cat\n🙂", WordTokenizer())
    assert [t.get_text() for t in figure.axes[0].texts][::2] == ["␣cat", "⏎", "U+1F642"]
    assert figure.texts[0].get_text() == "In the token boxes, ␣ marks a space, ⏎ marks a newline."


def test_figure_notes_stack_without_overlapping():
    for layout in ("constrained", None):
        figure, axes = viz.new_figure(layout=layout)
        viz.add_figure_note(figure, "first")
        viz.add_figure_note(figure, "second")
        first, second = figure.texts
        assert first.get_position()[1] > second.get_position()[1] + 0.03  # one strip apart
        figure.canvas.draw()  # lay out, then the axes must sit above both notes
        assert axes[0, 0].get_position().y0 > first.get_position()[1] + 0.03


def test_plot_tokens_fits_its_width_to_one_line_of_text(tokenizer):
    short = viz.plot_tokens("Hi there", tokenizer)
    long = viz.plot_tokens("a long line " * 20, tokenizer)
    assert 5.5 <= short.get_size_inches()[0] < 0.7 * long.get_size_inches()[0]
    # the same character cell in both: the short figure's axes span fewer columns
    assert short.axes[0].get_xlim()[1] < long.axes[0].get_xlim()[1] == 60


def test_plot_tokens_wraps_lines_and_caps_height(tokenizer):
    figure = viz.plot_tokens("abcdefgh " * 40, tokenizer, chars_per_line=20, max_lines=3)
    ax = figure.axes[0]
    assert ax.get_ylim()[0] == pytest.approx(3 * 2.4)  # three lines of text and ids
    assert "spans shown" in ax.get_title(loc="left")
    with pytest.raises(TypeError, match="lacks encode"):
        viz.plot_tokens("x", object())


# --------------------------------------------------------------------------- sampling


def test_next_token_choice_marks_each_cut():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    choice = viz.next_token_choice(logits, temperature=1.0, top_k=3, top_p=0.7)
    assert choice.ids.tolist() == [0, 1, 2, 3]
    assert choice.cut_by == ("", "", "top-p", "top-k")
    assert choice.num_surviving == 2
    np.testing.assert_allclose(choice.final_probs, [0.625, 0.375, 0, 0], atol=1e-6)
    greedy = viz.next_token_choice(logits, temperature=0.0, top_k=3)
    assert greedy.cut_by == ("", "greedy", "greedy", "greedy") and greedy.num_surviving == 1
    with pytest.raises(ValueError, match="one position"):
        viz.next_token_choice(logits[None])


def test_plot_next_token_choice_one_bar_per_shown_token(model, tokenizer):
    logits = viz.next_token_logits(model, tokenizer, "Once")
    assert logits.shape == (model.config.vocab_size,)
    choice = viz.next_token_choice(logits, temperature=0.8, top_k=5, num_shown=12)
    figure = viz.plot_next_token_choice(choice, tokenizer)
    ax = figure.axes[0]
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(bars) == 12
    assert [b.get_facecolor() for b in bars[:5]] == [bars[0].get_facecolor()] * 5
    assert bars[5].get_facecolor() != bars[0].get_facecolor()  # cut by top-k: grey
    assert f"5 of {model.config.vocab_size} tokens survive" in ax.get_title()
    assert ax.get_xlabel() == "probability" and ax.get_ylabel() == "next token (id)"


# --------------------------------------------------------------------------- training curves


def test_training_curves_by_step_and_by_tokens():
    records = train_records()
    figure = viz.plot_training_curves(records)
    loss_ax, bpb_ax, lr_ax = figure.axes
    assert [len(ax.lines) for ax in figure.axes] == [2, 1, 1]
    assert [ax.get_title() for ax in figure.axes] == ["Loss", "Validation bits per byte",
                                                      "Learning-rate schedule"]
    assert loss_ax.get_ylabel() == "cross-entropy (nats/token)"
    assert lr_ax.get_xlabel() == "optimizer step"
    np.testing.assert_array_equal(bpb_ax.lines[0].get_xdata(), [4, 9])
    by_tokens = viz.plot_training_curves(records, x="tokens")
    assert by_tokens.axes[0].get_xlabel() == "tokens seen"
    np.testing.assert_array_equal(by_tokens.axes[1].lines[0].get_xdata(), [4000, 9000])


def test_training_curves_without_data_say_so():
    figure = viz.plot_training_curves([])
    assert [len(ax.lines) for ax in figure.axes] == [0, 0, 0]
    assert figure.axes[1].texts[0].get_text() == "no eval records yet"
    only_train = viz.plot_training_curves(train_records(eval_every=100))
    assert [len(ax.lines) for ax in only_train.axes] == [1, 0, 1]


def test_training_curves_draw_estimates_and_full_evaluation_apart():
    records = train_records(steps=10, eval_every=5)
    for record in records:
        if record["kind"] == "eval":
            record["val_tokens"] = 8192
    records.append({"kind": "eval", "step": 9, "tokens": 9000, "elapsed_s": 1.0,
                    "val_loss": 4.0, "val_bpb": 1.5, "val_tokens": 215_000})
    loss_ax, bpb_ax, _ = viz.plot_training_curves(records).axes
    labels = [line.get_label() for line in bpb_ax.lines]
    assert labels == ["validation, first 8,192 tokens", "validation, all 215,000 tokens"]
    np.testing.assert_array_equal(bpb_ax.lines[0].get_xdata(), [4, 9])
    np.testing.assert_array_equal(bpb_ax.lines[1].get_ydata(), [1.5])
    assert bpb_ax.lines[1].get_marker() == "*" and bpb_ax.lines[1].get_linestyle() == "None"
    assert [line.get_label() for line in loss_ax.lines][1:] == labels
    assert bpb_ax.get_legend() is not None


def test_gradient_norm_plot_marks_clipped_steps():
    norms = {"clipped": [2.0, 0.5, 1.5, 0.9], "not clipped": [2.0, 0.4, 0.3, 0.2]}
    figure = viz.plot_gradient_norms(range(4), norms, threshold=1.0)
    ax = figure.axes[0]
    crosses = [line for line in ax.lines if line.get_marker() == "x"]
    np.testing.assert_array_equal(crosses[0].get_xdata(), [0, 2])
    np.testing.assert_array_equal(crosses[1].get_xdata(), [0])
    assert crosses[0].get_label() == "clipped: 2 steps above 1"
    assert ax.get_ylabel() == "global gradient norm (L2)" and ax.get_xlabel() == "optimizer step"
    with pytest.raises(ValueError, match="has 2 norms but x has 4"):
        viz.plot_gradient_norms(range(4), {"short": [1.0, 2.0]}, threshold=1.0)
    with pytest.raises(ValueError, match="threshold"):
        viz.plot_gradient_norms(range(4), norms, threshold=0)
    many = {f"seed {seed}": [1.0, 2.0, 0.5, 0.1] for seed in range(12)}  # past tab10's ten
    lines = viz.plot_gradient_norms(range(4), many, threshold=1.0).axes[0].lines
    runs = [line for line in lines if line.get_label().startswith("seed")]
    assert len(runs) == 24 and len({line.get_color() for line in runs}) == 10


def test_training_records_are_validated():
    with pytest.raises(ValueError, match="record 1 of kind 'eval' lacks val_bpb"):
        viz.plot_training_curves([train_records()[0], {"kind": "eval", "step": 1, "tokens": 1,
                                                       "elapsed_s": 1.0, "val_loss": 1.0}])
    with pytest.raises(TypeError, match="must be a dict"):
        viz.plot_training_curves([("train", 1)])
    with pytest.raises(ValueError, match="x='time'"):
        viz.plot_training_curves([], x="time")
    # Other kinds are the trainer's business: kept, not plotted.
    viz.plot_training_curves([{"kind": "checkpoint", "path": "x"}])


# --------------------------------------------------------------------------- parameters


def test_parameter_counts_one_bar_per_component(model):
    figure = viz.plot_parameter_counts(model)
    ax = figure.axes[0]
    counts = parameter_counts(model)
    assert [b.get_height() for b in ax.patches] == [counts[k] for k in
                                                    ("embedding", "attention", "feed_forward",
                                                     "norms", "lm_head")]
    assert [t.get_text() for t in ax.get_xticklabels()][-1] == "lm_head"
    assert "0 (tied to embedding)" in [t.get_text() for t in ax.texts]
    assert f"total {viz.format_count(counts['total'])}" in ax.get_title()
    assert ax.get_ylabel() == "parameters (count)"
    with pytest.raises(ValueError, match="non-negative int"):
        viz.plot_parameter_counts({"embedding": -3})
    with pytest.raises(TypeError):
        viz.plot_parameter_counts([1, 2])


# --------------------------------------------------------------------------- all plots


def every_plot(model, tokenizer):
    maps, labels = viz.attention_for_text(model, tokenizer, "abc")
    logits = viz.next_token_logits(model, tokenizer, "ab")
    return {
        "attention": viz.plot_attention(maps, labels, layers=0, heads=0),
        "rope_rotation": viz.plot_rope_rotation(16, 0, range(3)),
        "rope_angles": viz.plot_rope_angles(16, max_position=8),
        "rope_spectrum": viz.plot_rope_spectrum(16),
        "rope_similarity": viz.plot_rope_similarity(16, 8),
        "next_token": viz.plot_next_token_choice(viz.next_token_choice(logits), tokenizer),
        "training": viz.plot_training_curves(train_records()),
        "gradient norms": viz.plot_gradient_norms(range(3), {"run": [1.0, 2.0, 0.5]}, 1.0),
        "parameters": viz.plot_parameter_counts(model),
    }


def test_every_plot_is_titled_and_labelled_and_leaves_pyplot_alone(model, tokenizer):
    open_before = plt.get_fignums()
    for name, figure in every_plot(model, tokenizer).items():
        assert isinstance(figure, Figure), name
        width, height = figure.get_size_inches()
        assert width <= viz.MAX_FIGURE_WIDTH_IN and height <= viz.MAX_FIGURE_HEIGHT_IN, name
        plots = [ax for ax in figure.axes if ax.get_label() != "<colorbar>"]
        for ax in plots:
            assert ax.get_xlabel() and ax.get_ylabel(), name
            assert ax.get_title() or figure.get_suptitle(), name
    assert plt.get_fignums() == open_before  # nothing registered with pyplot


def test_plot_lines_draws_one_line_per_series():
    figure = viz.plot_lines([0, 1, 2], {"a": [1, 2, 3], "b": [3, 2, 1]}, title="T", xlabel="x (s)",
                            ylabel="y (ms)", reference=1.0)
    ax = figure.axes[0]
    assert len(ax.lines) == 3  # two series and the reference line
    assert ax.get_title() == "T" and ax.get_xlabel() == "x (s)" and ax.get_ylabel() == "y (ms)"
    with pytest.raises(ValueError, match="series 'a' has 2 values"):
        viz.plot_lines([0, 1, 2], {"a": [1, 2]}, title="T", xlabel="x", ylabel="y")


def test_plot_bars_labels_each_bar():
    figure = viz.plot_bars({"eager": 2.0, "compiled": 1.0}, title="Speed", ylabel="ms")
    ax = figure.axes[0]
    assert len(ax.patches) == 2
    assert [t.get_text() for t in ax.texts] == ["2", "1"]
    with pytest.raises(ValueError, match="empty"):
        viz.plot_bars({}, title="x", ylabel="y")


# --------------------------------------------------------------------------- inside a model


def plot_axes(figure):
    return [ax for ax in figure.axes if ax.get_label() != "<colorbar>"]


def test_plot_head_scores_one_labelled_panel_per_score():
    scores = {"previous token": torch.rand(3, 4), "first token": np.zeros((3, 4))}
    figure = viz.plot_head_scores(scores, title="Scores", value_label="mean weight")
    panels = plot_axes(figure)
    assert [ax.get_title() for ax in panels] == ["previous token", "first token"]
    for ax in panels:
        assert ax.get_xlabel() == "head" and ax.get_ylabel() == "layer"
        assert ax.images[0].get_array().shape == (3, 4)
        assert len(ax.texts) == 12  # every cell annotated
    # one colour scale for all panels
    assert {ax.images[0].get_clim() for ax in panels} == {panels[0].images[0].get_clim()}
    with pytest.raises(ValueError, match="same"):
        viz.plot_head_scores({"a": np.zeros((3, 4)), "b": np.zeros((2, 4))}, title="t",
                             value_label="v")
    with pytest.raises(ValueError, match="layers, heads"):
        viz.plot_head_scores({"a": np.zeros(3)}, title="t", value_label="v")


def test_plot_logit_lens_names_the_top_guess_in_every_cell():
    probabilities = np.array([[0.1, 0.2, 0.3], [0.5, 0.9, 0.4]])
    labels = [["a", "b", "c"], ["d", "e", "f"]]
    figure = viz.plot_logit_lens(probabilities, labels, ["x", "y", "z"], title="Lens")
    ax = plot_axes(figure)[0]
    assert sorted(t.get_text() for t in ax.texts) == list("abcdef")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["embedding", "after layer 0"]
    assert ax.get_title() == "Lens" and ax.get_xlabel() and ax.get_ylabel()
    with pytest.raises(ValueError, match="input labels"):
        viz.plot_logit_lens(probabilities, labels, ["x"], title="Lens")
    with pytest.raises(ValueError, match="top_labels"):
        viz.plot_logit_lens(probabilities, labels[:1], ["x", "y", "z"], title="Lens")


def test_plot_rope_pair_energy_plots_energy_against_wavelength():
    energy = {"queries": torch.full((2, 4), 0.25), "keys": np.full((2, 4), 0.25)}
    figure = viz.plot_rope_pair_energy(energy, head_dim=8, context_length=512)
    panels = plot_axes(figure)
    assert [ax.get_title() for ax in panels] == ["queries", "keys"]
    for ax in panels:
        assert ax.get_xscale() == "log" and ax.get_xlabel() and ax.get_ylabel()
        assert len(ax.lines) == 3  # two layers and the context line
        np.testing.assert_allclose(ax.lines[0].get_xdata(), viz.rope_wavelengths(8))
    with pytest.raises(ValueError, match="head_dim=8"):
        viz.plot_rope_pair_energy({"queries": np.zeros((2, 3))}, head_dim=8)


def test_plot_ablations_shows_every_seed_and_the_baseline_band():
    from transformer_lib.analysis.ablations import clear_differences, summarise_ablations

    def runs(values):
        return [{"seed": s, "val_bpb": v, "parameters": 100, "tokens_per_s": 10.0}
                for s, v in enumerate(values)]

    results = {"variants": {"baseline": {"runs": runs([2.00, 2.02, 2.01])},
                            "worse": {"runs": runs([2.20, 2.25, 2.21])},
                            "noise": {"runs": runs([2.015, 1.99, 2.03])},
                            "better": {"runs": runs([1.90, 1.92, 1.91])},
                            "unfinished": {"runs": []}}}
    summaries = summarise_ablations(results)
    assert "unfinished" not in summaries
    assert summaries["worse"].spread == pytest.approx(0.025)
    differences = clear_differences(summaries)
    assert set(differences) == {"worse", "better"}
    assert differences["worse"] == pytest.approx(2.22 - 2.01)
    figure = viz.plot_ablations(summaries)
    ax = figure.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["better", "baseline", "noise", "worse"]  # best first
    dots = np.concatenate([c.get_offsets() for c in ax.collections if len(c.get_offsets())])
    assert len(dots) == 12  # every seed of every variant
    band = [p for p in ax.patches if isinstance(p, Rectangle) or hasattr(p, "get_xy")]
    assert band  # the baseline's seed range
    with pytest.raises(KeyError, match="baseline"):
        viz.plot_ablations({"worse": summaries["worse"]})
    plt.close("all")


def test_adaptation_results_has_four_panels_one_bar_per_run():
    runs = {"base": dict(score=0.0, trainable_parameters=0, minutes=0.0, bpb_before=1.5,
                         bpb_after=1.5),
            "LoRA r=8": dict(score=0.4, trainable_parameters=77_824, minutes=2.5,
                             bpb_before=1.5, bpb_after=1.52)}
    figure = viz.plot_adaptation_results(runs)
    assert isinstance(figure, Figure) and len(figure.axes) == 4
    score_ax, params_ax, _, bpb_ax = figure.axes
    assert len(score_ax.patches) == 2 and len(bpb_ax.patches) == 4
    assert params_ax.get_yscale() == "log"
    assert [t.get_text() for t in score_ax.get_xticklabels()] == ["base", "LoRA r=8"]
    assert [t.get_text() for t in score_ax.texts] == ["0.0%", "40.0%"]
    assert score_ax.get_ylim()[1] == pytest.approx(0.52)  # room above the best, not up to 1
    assert all(ax.get_ylabel() for ax in figure.axes)
    low = viz.plot_adaptation_results({"a": dict(runs["base"]), "b": {**runs["LoRA r=8"],
                                                                     "score": 0.05}})
    assert low.axes[0].get_ylim()[1] == pytest.approx(0.2)  # small scores stay readable
    with pytest.raises(ValueError, match="lacks bpb_after"):
        viz.plot_adaptation_results({"x": dict(score=0, trainable_parameters=0, minutes=0,
                                               bpb_before=1)})
    with pytest.raises(ValueError, match="empty"):
        viz.plot_adaptation_results({})


def test_bits_per_byte_ladder_is_sorted_labelled_and_coloured_by_kind():
    from matplotlib.colors import to_rgba

    ladder = {"bigram": 1.5, "uniform": 3.0, "model": 1.1, "gzip": 2.4}
    figure = viz.plot_bits_per_byte_ladder(ladder, models=["model"])
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["uniform", "gzip", "bigram", "model"]
    assert [p.get_width() for p in ax.patches] == [3.0, 2.4, 1.5, 1.1]
    assert [t.get_text() for t in ax.texts] == ["3.00", "2.40", "1.50", "1.10"]
    assert ax.patches[-1].get_facecolor() == to_rgba(viz.EVAL_COLOUR)
    assert ax.patches[0].get_facecolor() == to_rgba(viz.TRAIN_COLOUR)
    assert "bits per byte" in ax.get_xlabel() and ax.get_title()
    with pytest.raises(KeyError, match="not in the ladder"):
        viz.plot_bits_per_byte_ladder(ladder, models=["stories260K"])
    with pytest.raises(ValueError, match="finite and positive"):
        viz.plot_bits_per_byte_ladder({"broken": float("nan")})
    with pytest.raises(ValueError, match="empty"):
        viz.plot_bits_per_byte_ladder({})


# --------------------------------------------------------------------------- hardware


def test_plot_roofline_places_each_workload_on_the_roof():
    from transformer_lib.analysis.cost import Workload

    workloads = [Workload("decode", flops=2e6, bytes=4e6), Workload("train", flops=6e9,
                                                                      bytes=1e7)]
    figure = viz.plot_roofline(workloads, peak_flops=1e11, bandwidth=1e10, title="roof",
                               measured={"decode": 1e8})
    ax = figure.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    hollow = [c for c in ax.collections if len(c.get_offsets()) == 1]
    points = {tuple(np.round(c.get_offsets()[0], 6)) for c in hollow}
    assert (0.5, 5e9) in points  # memory-bound: intensity 0.5 FLOP/byte x 10 GB/s
    assert (600.0, 1e11) in points  # compute-bound: capped at the peak
    assert (0.5, 1e8) in points  # the measured decode rate, below its roof
    with pytest.raises(ValueError, match="empty"):
        viz.plot_roofline([], peak_flops=1e11, bandwidth=1e10, title="x")
    with pytest.raises(ValueError, match="not among"):
        viz.plot_roofline(workloads, peak_flops=1e11, bandwidth=1e10, title="x",
                          measured={"prefill": 1.0})
    for flops, moved in ((1e6, 0), (0, 1e6), (float("nan"), 1e6)):
        with pytest.raises(ValueError, match="must be a positive finite number"):
            Workload("empty", flops=flops, bytes=moved)
    assert Workload("numpy", flops=np.int64(4), bytes=np.float32(2.0)).intensity == 2.0


def test_equal_time_runs_plot_one_line_and_star_per_run_labelled_once_per_optimizer():
    def run(name, seed):
        return {"name": name, "seed": seed, "val_bpb": 1.2 - 0.01 * seed, "train_seconds": 300,
                "evals": [{"minutes": m, "val_bpb": 2.0 - 0.2 * m} for m in (1, 2, 3)]}

    figure = viz.plot_equal_time_runs([run("adamw", 0), run("muon", 0), run("adamw", 1)],
                                      title="t")
    ax = figure.axes[0]
    assert len(ax.lines) == 3 and len(ax.collections) == 3  # a line and a star per run
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert sorted(labels) == sorted(f"{name}, {kind}" for name in ("adamw", "muon")
                                    for kind in ("sampled windows", "every token (final)"))
    assert ax.lines[0].get_color() == ax.lines[2].get_color() != ax.lines[1].get_color()
    with pytest.raises(ValueError, match="empty"):
        viz.plot_equal_time_runs([], title="t")


def test_equal_step_runs_plot_against_steps_with_the_star_at_the_last_step():
    run = {"name": "plain", "seed": 0, "val_bpb": 1.1, "steps": 1300, "train_seconds": 250,
           "evals": [{"step": s, "val_bpb": 2.0 - s / 1000} for s in (100, 200, 300)]}
    ax = viz.plot_equal_time_runs([run], title="t", x="step").axes[0]
    assert list(ax.lines[0].get_xdata()) == [100, 200, 300]
    assert ax.collections[0].get_offsets()[0][0] == 1300 and ax.get_xlabel() == "training steps"
    with pytest.raises(ValueError, match="'minutes' or 'step'"):
        viz.plot_equal_time_runs([run], title="t", x="tokens")
