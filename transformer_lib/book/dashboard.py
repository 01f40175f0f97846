"""A live training dashboard: one plot of the training curves that redraws in place.

Pass a ``LiveDashboard`` to the trainer as its callback. In a notebook it shows a single image
output at once, when it is created (so the reader sees the run's frame while the tokenizer and
caches are still being prepared), and replaces it on each redraw (through an ``IPython.display`` handle), throttled to at
most one redraw every ``min_interval_s`` seconds plus one per evaluation, so a long run leaves one
small output instead of thousands. In a terminal or a script it draws and prints nothing. Either
way it keeps every record, so ``viz.plot_training_curves(dashboard.history)`` works afterwards.
Its title says where the run is: step N of M, the time since the dashboard was created and an
estimate of the time left, from the pace of the steps so far.

``StatusLine`` is the same idea for a loop without a plot: one line of text, replaced in place,
that ends on its final state (which a stored notebook then shows).
"""

from __future__ import annotations

import time

from matplotlib.figure import Figure

from . import viz
from .widgets import running_in_notebook


def _show_new(image):
    """Display ``image`` as a new output and return a handle that can replace it later."""
    from IPython.display import display

    return display(image, display_id=True)


class LiveDashboard:
    """A trainer callback: records in, in-place training curves out (notebooks only).

    Each record is a dict, ``{"kind": "train", "step", "tokens", "elapsed_s", "loss", "lr"}`` or
    ``{"kind": "eval", "step", "tokens", "elapsed_s", "val_loss", "val_bpb"}``; other kinds are
    kept but not plotted. Call :meth:`close` after training to draw the final state.
    """

    def __init__(self, total_steps: int | None = None, min_interval_s: float = 5.0,
                 x: str = "step", dpi: int = 80, notebook: bool | None = None):
        if not min_interval_s >= 0:
            raise ValueError(f"min_interval_s={min_interval_s} must be >= 0")
        if x not in viz.TRAINING_X_AXES:
            raise ValueError(f"x={x!r} must be one of {', '.join(viz.TRAINING_X_AXES)}")
        if total_steps is not None and not (isinstance(total_steps, int) and total_steps > 0):
            raise ValueError(f"total_steps={total_steps!r} must be a positive int (the run's "
                             "max_steps), or None when the run stops by time")
        self.total_steps = total_steps
        self.min_interval_s = float(min_interval_s)
        self.x = x
        self.dpi = dpi
        # Decided once here, not per record: the callback runs inside the training loop.
        self.notebook = running_in_notebook() if notebook is None else bool(notebook)
        self.history: list[dict] = []
        self.redraw_count = 0
        self.last_figure: Figure | None = None
        self._handle = None
        self._last_draw = -float("inf")
        self._drawn_records = 0
        self._started = time.monotonic()
        if self.notebook:
            self.redraw()  # the first frame, before any step: the reader sees the run start

    def __call__(self, record: dict) -> None:
        """Store one record; in a notebook, redraw on an eval record or when the interval passed."""
        record = viz.validate_training_record(record, len(self.history))
        self.history.append(record)
        if not self.notebook:
            return
        due = time.monotonic() - self._last_draw >= self.min_interval_s
        if due or record.get("kind") == "eval":
            self.redraw()

    def redraw(self) -> None:
        """Draw the curves now and replace the previous image (the first call creates it)."""
        from IPython.display import Image

        figure = self.figure()
        image = Image(data=viz.figure_to_png(figure, dpi=self.dpi), format="png")
        if self._handle is None:
            self._handle = _show_new(image)
        else:
            self._handle.update(image)
        self.last_figure = figure
        self.redraw_count += 1
        self._drawn_records = len(self.history)
        # Measured after drawing, so a slow draw does not eat into the next interval.
        self._last_draw = time.monotonic()

    def close(self) -> None:
        """Draw the records that throttling held back, so the output ends on the final state."""
        if self.notebook and self._drawn_records < len(self.history):
            self.redraw()

    def title(self, now: float | None = None) -> str:
        """Where the run is: "step N of M, 0:41 elapsed, about 1:02 left" (M and the estimate
        only when total_steps is known; the estimate once two training records give a pace)."""
        elapsed = (time.monotonic() if now is None else now) - self._started
        steps = [r for r in self.history if r.get("kind") == "train"]
        done = max((r["step"] for r in self.history if "step" in r), default=0)
        of = f" of {self.total_steps}" if self.total_steps else ""
        text = f"Training: step {done}{of}, {_clock(elapsed)} elapsed"
        if self.total_steps and len(steps) >= 2 and steps[-1]["step"] > steps[0]["step"]:
            pace = ((steps[-1]["elapsed_s"] - steps[0]["elapsed_s"])
                    / (steps[-1]["step"] - steps[0]["step"]))  # seconds per step
            text += f", about {_clock(pace * max(self.total_steps - done, 0))} left"
        elif not self.history:
            text += " (preparing the data)"
        return text

    def figure(self) -> Figure:
        """The full history as a fresh figure (works in a terminal too)."""
        x_max = self.total_steps if self.x == "step" else None
        return viz.plot_training_curves(self.history, x=self.x, title=self.title(), x_max=x_max)


def _clock(seconds: float) -> str:
    """Seconds as m:ss."""
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}:{rest:02d}"


class StatusLine:
    """One line of progress, replaced in place in a notebook and silent elsewhere.

    ``update(done)`` (or calling it with a trainer record) rewrites the line, "what: done of
    total steps", at most every ``min_interval_s`` seconds. Before the first step and after
    the last the line is the same, "what: total steps", with no count or timing in it: a
    stored notebook keeps the last rewrite while nbval sees only the first display (it
    ignores rewrites), so the two must agree for the book to compare equal on any machine.
    """

    def __init__(self, what: str, total: int, unit: str = "steps", min_interval_s: float = 0.5,
                 notebook: bool | None = None):
        if not (isinstance(total, int) and total > 0):
            raise ValueError(f"total={total!r} must be a positive int")
        self.what, self.total, self.unit = what, total, unit
        self.min_interval_s = float(min_interval_s)
        self.notebook = running_in_notebook() if notebook is None else bool(notebook)
        self.done = 0
        self._last = -float("inf")
        self._handle = _show_text(self.text()) if self.notebook else None

    def text(self) -> str:
        if 0 < self.done < self.total:
            return f"{self.what}: {self.done} of {self.total} {self.unit}"
        return f"{self.what}: {self.total} {self.unit}"

    def update(self, done: int) -> None:
        self.done = int(done)
        now = time.monotonic()
        if self._handle is not None and (now - self._last >= self.min_interval_s
                                         or self.done >= self.total):
            self._handle.update(_text(self.text()))
            self._last = now

    def __call__(self, record: dict) -> None:
        """A trainer callback: training records move the line on."""
        if record.get("kind") == "train":
            self.update(record["step"])

    def finish(self) -> None:
        self.done = self.total
        if self._handle is not None:
            self._handle.update(_text(self.text()))


def _text(text: str):
    """A plain-text display object."""
    from IPython.display import Pretty

    return Pretty(text)


def _show_text(text: str):
    """Display ``text`` as a new output and return a handle that can replace it later."""
    from IPython.display import display

    return display(_text(text), display_id=True)
