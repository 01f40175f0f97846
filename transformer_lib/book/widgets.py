"""Interactive explorers for the book (ipywidgets), each with a static fallback.

Each explorer keeps its controls in ``.controls`` (name -> widget) and redraws through the same
``viz`` helper the chapters use. The latest figure is ``.last_figure``, redraws are counted in
``.redraw_count`` and the plotted data is kept on the explorer, so a reader (or a test) can set
``explorer.controls["head"].value = 2`` and see what changed; ``update(**values)`` sets several
controls with one redraw.

Display: in Jupyter with ipywidgets an explorer shows its widget, and the same output carries a
PNG of the current view for static pages (GitHub, nbconvert). Without ipywidgets, or in a
terminal, ``show()`` returns a static figure with a one-line note. A redraw never prints: bad
input (say, a text longer than the model's context) is shown on a message line in the widget.
"""

from __future__ import annotations

import base64
import html
import math

from matplotlib.figure import Figure

from . import viz

try:
    import ipywidgets
except ImportError:  # the book still reads without widgets: explorers fall back to figures
    ipywidgets = None

ALL = "all"  # the layer/head choice that shows every layer or head


def running_in_notebook() -> bool:
    """True inside a Jupyter kernel (rich display works); False in a terminal or a script."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    # Terminal IPython has a shell but no kernel; Jupyter (and Colab, VS Code) have both.
    return shell is not None and getattr(shell, "kernel", None) is not None


class PlainControl:
    """Stand-in for an ipywidgets control when ipywidgets is missing: a value and observers."""

    def __init__(self, description: str, value):
        self.description = description
        self._value = value
        self._observers = []

    @property
    def value(self):
        return self._value

    @value.setter
    def value(self, new) -> None:
        old, self._value = self._value, new
        if new != old:
            for callback in self._observers:
                callback({"name": "value", "old": old, "new": new, "owner": self})

    def observe(self, callback, names: str = "value") -> None:
        self._observers.append(callback)


_WIDE = {"style": {"description_width": "initial"}}


def _slider(description: str, value, low, high, step=1):
    """An int or float slider that redraws on release (a drag would queue dozens of redraws)."""
    if ipywidgets is None:
        return PlainControl(description, value)
    kind = ipywidgets.IntSlider if isinstance(step, int) else ipywidgets.FloatSlider
    return kind(value=value, min=low, max=high, step=step, description=description,
                continuous_update=False, **_WIDE)


def _dropdown(description: str, options: list, value):
    if ipywidgets is None:
        return PlainControl(description, value)
    return ipywidgets.Dropdown(options=options, value=value, description=description, **_WIDE)


def _text_box(description: str, value: str, multiline: bool = False):
    """A text box that redraws when the reader presses Enter or leaves it, not on every key
    (a model run per keystroke would queue up); its label says so."""
    if ipywidgets is None:
        return PlainControl(description, value)
    kind = ipywidgets.Textarea if multiline else ipywidgets.Text
    how = "click outside to redraw" if multiline else "press Enter to redraw"
    return kind(value=value, description=f"{description} ({how})", continuous_update=False,
                layout=ipywidgets.Layout(width="95%"), **_WIDE)


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) in pixels of a PNG, read from its header."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def _check_choice(name: str, value, count: int) -> None:
    """An index in range, or ALL; the ValueError names the bad control."""
    if value == ALL:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < count:
        raise ValueError(f"{name}={value!r} is out of range: choose 0..{count - 1} or {ALL!r}")


class Explorer:
    """Shared plumbing: controls -> ``draw()`` -> Figure -> PNG in an Image widget."""

    title = "explorer"

    def __init__(self, controls: dict, rows: list[list[str]] | None = None, dpi: int = 100):
        self.controls = controls
        self.dpi = dpi
        self.last_figure: Figure | None = None
        self.redraw_count = 0
        self.error: str | None = None
        self._batching = False
        self.widget = self._image = self._message = None
        if ipywidgets is not None:
            # Drawn at the PNG's own width (set on each redraw), shrunk to fit a narrow
            # column but never stretched past it: a stretched figure is blurred.
            self._image = ipywidgets.Image(format="png", layout=ipywidgets.Layout(
                max_width="100%", height="auto"))
            self._message = ipywidgets.HTML()  # empty unless the last redraw failed
            rows = rows or [list(controls)]
            boxes = [ipywidgets.HBox([controls[name] for name in row]) for row in rows]
            self.widget = ipywidgets.VBox([*boxes, self._message, self._image])
        for control in controls.values():
            control.observe(self._on_change, names="value")
        self.redraw()

    def draw(self) -> Figure:
        """Build the figure for the current control values (subclasses)."""
        raise NotImplementedError

    def state(self) -> str:
        """The current settings in a few words, for notes and the text representation."""
        return ", ".join(f"{name}={control.value!r}" for name, control in self.controls.items()
                         if not isinstance(control.value, str) or len(control.value) < 30)

    @property
    def values(self) -> dict:
        """Current value of every control."""
        return {name: control.value for name, control in self.controls.items()}

    def update(self, **values) -> None:
        """Set several controls, then redraw once."""
        unknown = sorted(set(values) - set(self.controls))
        if unknown:
            raise TypeError(f"{type(self).__name__} has no control(s) {unknown}; "
                            f"controls: {sorted(self.controls)}")
        self._batching = True
        try:
            for name, value in values.items():
                self.controls[name].value = value
        finally:
            self._batching = False
        self.redraw()

    def _on_change(self, change) -> None:
        if not self._batching:
            self.redraw()

    def redraw(self) -> None:
        """Redraw for the current values; a ValueError becomes a message, not a traceback."""
        try:
            figure = self.draw()
        except ValueError as err:  # bad input typed into a control: say so, keep the old view
            self.error = str(err)
            if self._message is not None:
                self._message.value = f"<span style='color:#b00020'>{html.escape(str(err))}</span>"
            return
        self.error = None
        if self._message is not None:
            self._message.value = ""
        self.last_figure = figure
        self.redraw_count += 1
        if self._image is not None:
            png = viz.figure_to_png(figure, dpi=self.dpi)
            self._image.layout.width = f"{png_size(png)[0]}px"
            self._image.value = png

    def note(self) -> str:
        return f"Static {self.title} ({self.state()}): interactive in Jupyter with ipywidgets."

    def static_figure(self) -> Figure:
        """A fresh figure of the current view with the one-line note under it."""
        return viz.add_figure_note(self.draw(), self.note())

    def show(self) -> Figure | None:
        """Display the widget in a notebook; elsewhere return the static figure."""
        if self.widget is not None and running_in_notebook():
            from IPython.display import display

            display(self)
            return None
        return self.static_figure()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.state()})"

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        """The widget for live front ends, plus a PNG and a text note for static renderers."""
        data = {"text/plain": self.note()}
        try:
            png = viz.figure_to_png(self.static_figure(), dpi=self.dpi)
            data["image/png"] = base64.b64encode(png).decode("ascii")
        except ValueError:  # current input is invalid: the widget shows the message instead
            pass
        if self.widget is not None and hasattr(self.widget, "_repr_mimebundle_"):  # ipywidgets 8
            view = self.widget._repr_mimebundle_()
            view.pop("text/plain", None)  # ours is deterministic (notebook outputs are diffed)
            data.update(view)
        return data


class AttentionExplorer(Explorer):
    """Type a text, pick a layer and a head: the model's attention weights redraw.

    The model runs once per text (cached), so switching layer or head only redraws.
    """

    title = "attention explorer"

    def __init__(self, model, tokenizer, text: str = "The cat sat on the mat because it was tired.",
                 layer: int | str = 0, head: int | str = 0, dpi: int = 100):
        viz.check_tokenizer(tokenizer)
        config = model.config
        _check_choice("layer", layer, config.num_layers)
        _check_choice("head", head, config.num_heads)
        self.model, self.tokenizer = model, tokenizer
        self.maps, self.labels, self._maps_text = None, None, None
        controls = {
            "text": _text_box("text", text),
            "layer": _dropdown("layer", [ALL, *range(config.num_layers)], layer),
            "head": _dropdown("head", [ALL, *range(config.num_heads)], head),
        }
        super().__init__(controls, rows=[["text"], ["layer", "head"]], dpi=dpi)

    def draw(self) -> Figure:
        text = self.controls["text"].value
        if text != self._maps_text:
            self.maps, self.labels = viz.attention_for_text(self.model, self.tokenizer, text)
            self._maps_text = text
        layer, head = self.controls["layer"].value, self.controls["head"].value
        return viz.plot_attention(self.maps, self.labels, layers=None if layer == ALL else layer,
                                  heads=None if head == ALL else head)

    def state(self) -> str:
        values = self.values
        return f"layer={values['layer']!r}, head={values['head']!r}"


class RopeExplorer(Explorer):
    """Slide the position and the dimension pair: watch RoPE turn that pair of a vector."""

    title = "RoPE explorer"

    def __init__(self, head_dim: int = 64, theta: float = 10000.0, max_position: int = 64,
                 position: int = 8, pair: int = 0, trail: int = 24, dpi: int = 100):
        if not 0 <= position <= max_position:
            raise ValueError(f"position={position} must lie in 0..max_position={max_position}")
        viz.rope_wavelengths(head_dim, theta)  # validates head_dim and theta up front
        if not 0 <= pair < head_dim // 2:
            raise ValueError(f"pair={pair} must lie in 0..{head_dim // 2 - 1} for "
                             f"head_dim={head_dim}")
        self.head_dim, self.theta, self.trail = head_dim, theta, trail
        self.rotated: tuple[float, float] | None = None
        self.angle: float | None = None
        controls = {
            "position": _slider("position", position, 0, max_position),
            "pair": _slider("dimension pair", pair, 0, head_dim // 2 - 1),
        }
        super().__init__(controls, dpi=dpi)

    @classmethod
    def from_config(cls, config, **kwargs) -> RopeExplorer:
        """An explorer for a model config's head dimension, RoPE base and context."""
        kwargs.setdefault("max_position", min(config.max_seq_len - 1, 128))
        kwargs.setdefault("position", min(8, kwargs["max_position"]))
        return cls(head_dim=config.head_dim, theta=config.rope_theta, **kwargs)

    def draw(self) -> Figure:
        position, pair = self.controls["position"].value, self.controls["pair"].value
        # The last `trail` positions: older arrows only clutter the circle.
        positions = range(max(0, position - self.trail + 1), position + 1)
        figure = viz.plot_rope_rotation(self.head_dim, pair, positions, self.theta)
        x, y = viz.rope_rotated_pairs(self.head_dim, [position], self.theta)[0, pair]
        self.rotated, self.angle = (float(x), float(y)), math.atan2(y, x)
        return figure


class SamplingExplorer(Explorer):
    """Move temperature, top-k and top-p: the next-token bars show what each setting cuts.

    The model runs once per prompt (cached); the sliders only re-filter its logits.
    """

    title = "sampling explorer"

    def __init__(self, model, tokenizer, prompt: str = "Once upon a time",
                 temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                 num_shown: int = 20, max_top_k: int = 100, dpi: int = 100):
        viz.check_tokenizer(tokenizer)
        self.model, self.tokenizer, self.num_shown = model, tokenizer, num_shown
        self.logits, self._logits_prompt = None, None
        self.choice: viz.NextTokenChoice | None = None
        max_top_k = min(max_top_k, model.config.vocab_size)
        controls = {
            "prompt": _text_box("prompt", prompt),
            "temperature": _slider("temperature", float(temperature), 0.0, 2.0, 0.05),
            "top_k": _slider("top-k (0 = off)", int(top_k), 0, max_top_k),
            "top_p": _slider("top-p (1 = off)", float(top_p), 0.01, 1.0, 0.01),
        }
        super().__init__(controls, rows=[["prompt"], ["temperature", "top_k", "top_p"]], dpi=dpi)

    def draw(self) -> Figure:
        prompt = self.controls["prompt"].value
        if prompt != self._logits_prompt:
            self.logits = viz.next_token_logits(self.model, self.tokenizer, prompt)
            self._logits_prompt = prompt
        top_k, top_p = self.controls["top_k"].value, self.controls["top_p"].value
        self.choice = viz.next_token_choice(
            self.logits, temperature=self.controls["temperature"].value,
            top_k=top_k or None, top_p=top_p if top_p < 1.0 else None, num_shown=self.num_shown)
        return viz.plot_next_token_choice(self.choice, self.tokenizer)

    def state(self) -> str:
        values = self.values
        return (f"temperature={values['temperature']:g}, top_k={values['top_k']}, "
                f"top_p={values['top_p']:g}")


class TokenizerExplorer(Explorer):
    """Type text: see the tokens as coloured spans with their ids."""

    title = "tokenizer explorer"

    def __init__(self, tokenizer, text: str = "Tokenizers split text into pieces: "
                 "unbelievable, naïve, 1234567, 🙂.", chars_per_line: int = 60, dpi: int = 100):
        viz.check_tokenizer(tokenizer)
        self.tokenizer, self.chars_per_line = tokenizer, chars_per_line
        self.spans: list[viz.TokenSpan] = []
        self.token_ids: list[int] = []
        super().__init__({"text": _text_box("text", text, multiline=True)}, dpi=dpi)

    def draw(self) -> Figure:
        text = self.controls["text"].value
        figure = viz.plot_tokens(text, self.tokenizer, chars_per_line=self.chars_per_line)
        self.spans = viz.token_spans(self.tokenizer, text)
        self.token_ids = [i for span in self.spans for i in span.ids]
        return figure

    def state(self) -> str:
        name = getattr(self.tokenizer, "name", type(self.tokenizer).__name__)
        return f"tokenizer={name!r}, {len(self.token_ids)} tokens"
