"""Explorers and the live dashboard, driven by setting control values as a reader would."""

import math

import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg

from transformer_lib import ModelConfig
from transformer_lib.book import dashboard, viz, widgets

ipywidgets = pytest.importorskip("ipywidgets")

DPI = 40  # small PNGs keep the tests fast; the drawing code is the same




def heatmaps(figure):
    return [ax for ax in figure.axes if ax.images]


# --------------------------------------------------------------------------- attention


def test_attention_explorer_redraws_on_every_control(model, tokenizer, capsys):
    explorer = widgets.AttentionExplorer(model, tokenizer, text="hello world", dpi=DPI)
    assert isinstance(explorer.widget, ipywidgets.VBox)
    assert explorer.redraw_count == 1
    assert bytes(explorer._image.value).startswith(b"\x89PNG")
    first = heatmaps(explorer.last_figure)[0].images[0].get_array().copy()

    explorer.controls["head"].value = 3
    assert explorer.redraw_count == 2
    (panel,) = heatmaps(explorer.last_figure)
    assert panel.get_title() == "layer 0, head 3"
    assert not np.allclose(panel.images[0].get_array(), first)

    explorer.controls["layer"].value = widgets.ALL
    assert [ax.get_title() for ax in heatmaps(explorer.last_figure)] == \
        ["layer 0, head 3", "layer 1, head 3"]

    explorer.controls["text"].value = "abc"
    assert explorer.labels == ["a", "b", "c"]
    assert explorer.last_figure.get_suptitle().startswith("Attention over 3 tokens")

    explorer.update(layer=1, head=widgets.ALL)  # two controls, one redraw
    assert explorer.redraw_count == 5
    assert len(heatmaps(explorer.last_figure)) == model.config.num_heads
    assert capsys.readouterr() == ("", "")  # redraws never print (nbval diffs outputs)


def test_explorers_draw_at_their_own_size(model, tokenizer):
    """Each explorer's image is as wide as its PNG (shrunk to fit, never stretched), the
    all-layers view of one head is a grid rather than a strip, and every title fits."""
    explorers = [widgets.AttentionExplorer(model, tokenizer, text="hello world " * 3),
                 widgets.RopeExplorer(), widgets.SamplingExplorer(model, tokenizer),
                 widgets.TokenizerExplorer(tokenizer)]
    for explorer in explorers:
        width, _ = widgets.png_size(bytes(explorer._image.value))
        assert explorer._image.layout.width == f"{width}px", type(explorer).__name__
        assert explorer._image.layout.max_width == "100%"
        assert explorer._image.layout.height == "auto"
    for explorer in explorers:  # every title inside its figure
        figure = explorer.last_figure
        renderer = FigureCanvasAgg(figure).get_renderer()
        titles = [ax.title for ax in figure.axes] + [ax._left_title for ax in figure.axes]
        titles += [figure._suptitle] if figure._suptitle is not None else []
        for title in titles:
            if title.get_text():
                box = title.get_window_extent(renderer)
                assert -1 <= box.x0 and box.x1 <= figure.bbox.width + 1, title.get_text()
    attention = explorers[0]
    for layer, head in ((widgets.ALL, 1), (1, widgets.ALL), (widgets.ALL, widgets.ALL), (0, 0)):
        attention.update(layer=layer, head=head)
        figure = attention.last_figure
        width_in, height_in = figure.get_size_inches()
        assert height_in < 1.5 * width_in, (layer, head)  # a grid, not a tall strip
        renderer = FigureCanvasAgg(figure).get_renderer()
        title = figure._suptitle.get_window_extent(renderer)
        assert 0 <= title.x0 and title.x1 <= width_in * figure.dpi, (layer, head)
    attention.update(layer=widgets.ALL, head=1)
    assert len({ax.get_position().x0 for ax in heatmaps(attention.last_figure)}) == 2  # 2 x 2
    assert "press Enter" in attention.controls["text"].description


def test_attention_explorer_caches_the_model_run(model, tokenizer, monkeypatch):
    explorer = widgets.AttentionExplorer(model, tokenizer, text="cache me", dpi=DPI)
    calls = []
    real = viz.attention_for_text
    monkeypatch.setattr(viz, "attention_for_text", lambda *a: calls.append(a) or real(*a))
    explorer.controls["head"].value = 1
    explorer.controls["layer"].value = 1
    assert calls == []  # layer and head changes only redraw
    explorer.controls["text"].value = "new text"
    assert len(calls) == 1


def test_attention_explorer_reports_bad_text_without_raising(model, tokenizer, capsys):
    explorer = widgets.AttentionExplorer(model, tokenizer, text="ok", dpi=DPI)
    good_figure = explorer.last_figure
    explorer.controls["text"].value = "x" * (model.config.max_seq_len + 1)
    assert "max_seq_len" in explorer.error and "max_seq_len" in explorer._message.value
    assert explorer.last_figure is good_figure and explorer.redraw_count == 1
    explorer.controls["text"].value = "fine again"
    assert explorer.error is None and explorer._message.value == ""
    assert capsys.readouterr() == ("", "")
    with pytest.raises(ValueError, match="layer=5 is out of range"):
        widgets.AttentionExplorer(model, tokenizer, layer=5)
    with pytest.raises(TypeError, match="no control"):
        explorer.update(colour="red")


# --------------------------------------------------------------------------- RoPE


def test_rope_explorer_follows_position_and_pair(capsys):
    explorer = widgets.RopeExplorer(head_dim=16, max_position=40, position=1, pair=0, dpi=DPI)
    assert explorer.angle == pytest.approx(1.0, abs=1e-5)  # pair 0 turns 1 rad per token
    explorer.controls["position"].value = 2
    assert explorer.angle == pytest.approx(2.0, abs=1e-5)
    assert "position 2 in bold" in explorer.last_figure.axes[0].get_title()
    explorer.controls["pair"].value = 4
    inverse = 10000.0 ** (-8 / 16)
    assert explorer.angle == pytest.approx(2 * inverse, abs=1e-5)
    assert explorer.rotated == pytest.approx((math.cos(2 * inverse), math.sin(2 * inverse)),
                                             abs=1e-5)
    explorer.controls["position"].value = 40  # arrows: only the trail of recent positions
    assert len(explorer.last_figure.axes[0].patches) == explorer.trail
    assert capsys.readouterr() == ("", "")
    config = ModelConfig.from_preset("tiny")
    from_config = widgets.RopeExplorer.from_config(config, dpi=DPI)
    assert from_config.head_dim == config.head_dim
    assert from_config.controls["position"].max == config.max_seq_len - 1
    with pytest.raises(ValueError, match="pair=8"):
        widgets.RopeExplorer(head_dim=16, pair=8)
    short = widgets.RopeExplorer.from_config(ModelConfig.from_preset("tiny", max_seq_len=6),
                                             dpi=DPI)  # the default position 8 is past the end
    assert short.controls["position"].value == short.controls["position"].max == 5


# --------------------------------------------------------------------------- sampling


def test_sampling_explorer_counts_surviving_tokens(model, tokenizer, capsys):
    explorer = widgets.SamplingExplorer(model, tokenizer, prompt="Once", num_shown=10, dpi=DPI)
    vocab = model.config.vocab_size
    assert explorer.choice.num_surviving == vocab  # no cuts at the defaults
    explorer.controls["top_k"].value = 5
    assert explorer.choice.num_surviving == 5
    assert f"5 of {vocab} tokens survive" in explorer.last_figure.axes[0].get_title()
    assert explorer.choice.cut_by[5:] == ("top-k",) * 5
    explorer.update(top_k=0, top_p=0.01)
    surviving = explorer.choice.num_surviving
    assert 1 <= surviving < 10  # the untrained model is nearly uniform over 512 tokens
    assert explorer.choice.cut_by == ("",) * surviving + ("top-p",) * (10 - surviving)
    explorer.controls["temperature"].value = 0.0
    assert explorer.choice.num_surviving == 1 and explorer.choice.cut_by[1] == "greedy"
    before = explorer.logits.clone()
    explorer.controls["prompt"].value = "Twice upon"
    assert not torch.equal(explorer.logits, before)
    assert capsys.readouterr() == ("", "")


# --------------------------------------------------------------------------- tokenizer


def test_tokenizer_explorer_shows_tokens_and_ids(tokenizer, capsys):
    explorer = widgets.TokenizerExplorer(tokenizer, text="ab", dpi=DPI)
    assert explorer.token_ids == [97, 98]
    explorer.controls["text"].value = "né!"
    assert explorer.token_ids == [110, 195, 169, 33]
    assert [span.text for span in explorer.spans] == ["n", "é", "!"]
    assert len(explorer.last_figure.axes[0].patches) == 3
    assert explorer.last_figure.axes[0].get_title(loc="left").startswith("bytes: 4 tokens")
    assert capsys.readouterr() == ("", "")


# --------------------------------------------------------------------------- display


def test_mimebundle_offers_widget_png_and_a_note(tokenizer):
    explorer = widgets.TokenizerExplorer(tokenizer, text="hi", dpi=DPI)
    bundle = explorer._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "image/png",
                           "application/vnd.jupyter.widget-view+json"}
    assert bundle["text/plain"].startswith("Static tokenizer explorer (")
    assert "\n" not in bundle["text/plain"]  # one line


def test_static_fallback_without_ipywidgets(tokenizer, monkeypatch):
    monkeypatch.setattr(widgets, "ipywidgets", None)
    explorer = widgets.TokenizerExplorer(tokenizer, text="hi", dpi=DPI)
    assert explorer.widget is None
    assert isinstance(explorer.controls["text"], widgets.PlainControl)
    explorer.controls["text"].value = "hey"  # plain controls still redraw
    assert explorer.redraw_count == 2 and explorer.token_ids == [104, 101, 121]
    assert not widgets.running_in_notebook()
    figure = explorer.show()  # no notebook here: a static figure with the note
    assert figure.texts[-1].get_text() == explorer.note()
    assert set(explorer._repr_mimebundle_()) == {"text/plain", "image/png"}


# --------------------------------------------------------------------------- dashboard


def eval_record(step):
    return {"kind": "eval", "step": step, "tokens": 100 * step, "elapsed_s": float(step),
            "val_loss": 3.0, "val_bpb": 1.5}


def train_record(step):
    return {"kind": "train", "step": step, "tokens": 100 * step, "elapsed_s": float(step),
            "loss": 3.0 - 0.01 * step, "lr": 1e-3}


class FakeHandle:
    def __init__(self, shown):
        self.shown = shown

    def update(self, image):
        self.shown.append(("update", image))


def test_dashboard_is_silent_in_a_terminal(capsys):
    live = dashboard.LiveDashboard()  # auto-detects: pytest runs no kernel
    assert live.notebook is False
    for step in range(5):
        live(train_record(step))
    live(eval_record(4))
    live.close()
    assert capsys.readouterr() == ("", "")
    assert live.redraw_count == 0 and len(live.history) == 6
    figure = viz.plot_training_curves(live.history)
    assert [len(ax.lines) for ax in figure.axes] == [2, 1, 1]


def test_dashboard_updates_one_output_in_place_and_throttles(monkeypatch, capsys):
    shown = []
    monkeypatch.setattr(dashboard, "_show_new",
                        lambda image: shown.append(("new", image)) or FakeHandle(shown))
    live = dashboard.LiveDashboard(min_interval_s=3600, notebook=True, dpi=DPI)
    assert [kind for kind, _ in shown] == ["new"]  # the first frame, before any record
    live(train_record(0))
    for step in range(1, 20):
        live(train_record(step))  # within the interval: held back
    assert [kind for kind, _ in shown] == ["new"]
    live(eval_record(19))  # every eval redraws, in the same output
    assert [kind for kind, _ in shown] == ["new", "update"]
    assert shown[-1][1].data.startswith(b"\x89PNG")
    live(train_record(20))
    live.close()  # draws what throttling held back
    assert [kind for kind, _ in shown] == ["new", "update", "update"]
    live.close()  # nothing new: no redraw
    assert live.redraw_count == 3
    assert len(live.last_figure.axes[0].lines[0].get_xdata()) == 21
    assert capsys.readouterr() == ("", "")


def test_dashboard_without_throttle_draws_every_record(monkeypatch):
    shown = []
    monkeypatch.setattr(dashboard, "_show_new",
                        lambda image: shown.append("new") or FakeHandle(shown))
    live = dashboard.LiveDashboard(min_interval_s=0, notebook=True, dpi=DPI)
    for step in range(2):
        live(train_record(step))
    assert live.redraw_count == 3 and shown == ["new", ("update", shown[1][1]),
                                                ("update", shown[2][1])]


def test_dashboard_draws_its_first_frame_at_once_and_says_where_the_run_is(monkeypatch):
    shown = []
    monkeypatch.setattr(dashboard, "_show_new",
                        lambda image: shown.append(("new", image)) or FakeHandle(shown))
    now = [100.0]
    monkeypatch.setattr(dashboard.time, "monotonic", lambda: now[0])
    live = dashboard.LiveDashboard(total_steps=300, min_interval_s=3600, notebook=True, dpi=DPI)
    assert shown and shown[0][0] == "new"  # drawn in the constructor, before any step
    assert live.last_figure.texts[-1].get_text() == (
        "Training: step 0 of 300, 0:00 elapsed (preparing the data)")
    now[0] = 160.0
    for step in (5, 10, 100):  # 2 s per step after step 5
        live({**train_record(step), "elapsed_s": 10.0 + 2.0 * (step - 5)})
    assert live.title() == "Training: step 100 of 300, 1:00 elapsed, about 6:40 left"
    live({**eval_record(100), "val_bpb": 1.8})  # the first validation point redraws
    figure = live.last_figure
    assert figure.texts[-1].get_text().startswith("Training: step 100 of 300, 1:00 elapsed")
    loss_ax, bpb_ax, lr_ax = figure.axes
    for ax in (loss_ax, bpb_ax, lr_ax):  # every panel spans the whole run from the start
        assert ax.get_xlim()[0] == 0 and ax.get_xlim()[1] >= 300
    low, high = bpb_ax.get_ylim()  # one validation point: a readable range around it
    assert low <= 1.8 * 0.9 + 1e-9 and high >= 1.8 * 1.1 - 1e-9
    with pytest.raises(ValueError, match="total_steps"):
        dashboard.LiveDashboard(total_steps=0, notebook=False)


def test_status_line_replaces_itself_and_ends_on_a_stable_line(monkeypatch, capsys):
    shown = []

    class Handle:
        def update(self, text):
            shown.append(str(text.data))

    monkeypatch.setattr(dashboard, "_show_text", lambda text: shown.append(text)
                        or Handle())
    status = dashboard.StatusLine("train_loop", total=40, min_interval_s=0, notebook=True)
    for step in range(1, 41):
        status({"kind": "train", "step": step})
    status({"kind": "eval", "step": 40})  # not a step: ignored
    status.finish()
    # nbval compares the first display with the stored (last) one: they must be the same line
    assert shown[0] == shown[-1] == "train_loop: 40 steps"
    assert shown[1] == "train_loop: 1 of 40 steps" and shown[-3] == "train_loop: 39 of 40 steps"
    assert len(shown) == 42
    quiet = dashboard.StatusLine("eval", total=3, notebook=False)  # a terminal: nothing shown
    quiet.update(2)
    quiet.finish()
    assert quiet.text() == "eval: 3 steps" and capsys.readouterr() == ("", "")
    with pytest.raises(ValueError, match="total"):
        dashboard.StatusLine("x", total=0)


def test_dashboard_rejects_bad_records_and_settings():
    live = dashboard.LiveDashboard(notebook=False)
    with pytest.raises(ValueError, match="lacks loss"):
        live({"kind": "train", "step": 1, "tokens": 1, "elapsed_s": 0.1, "lr": 1e-3})
    with pytest.raises(ValueError, match="x='epoch'"):
        dashboard.LiveDashboard(x="epoch")
    with pytest.raises(ValueError, match="min_interval_s"):
        dashboard.LiveDashboard(min_interval_s=-1)
    live({"kind": "train", "step": torch.tensor(3), "tokens": 30, "elapsed_s": 1,
          "loss": torch.tensor(2.5), "lr": 1e-3})
    assert live.history[-1]["loss"] == 2.5 and type(live.history[-1]["step"]) is int
