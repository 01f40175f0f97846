"""A live training dashboard: one plot of the training curves that redraws in place.

Pass a ``LiveDashboard`` to the trainer as its callback. In a notebook it shows a single image
output that is replaced on each redraw (through an ``IPython.display`` handle), throttled to at
most one redraw every ``min_interval_s`` seconds plus one per evaluation, so a long run leaves one
small output instead of thousands. In a terminal or a script it draws and prints nothing. Either
way it keeps every record, so ``viz.plot_training_curves(dashboard.history)`` works afterwards.
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

    def __init__(self, min_interval_s: float = 5.0, x: str = "step", dpi: int = 80,
                 notebook: bool | None = None):
        if not min_interval_s >= 0:
            raise ValueError(f"min_interval_s={min_interval_s} must be >= 0")
        if x not in viz.TRAINING_X_AXES:
            raise ValueError(f"x={x!r} must be one of {', '.join(viz.TRAINING_X_AXES)}")
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

        figure = viz.plot_training_curves(self.history, x=self.x)
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

    def figure(self) -> Figure:
        """The full history as a fresh figure (works in a terminal too)."""
        return viz.plot_training_curves(self.history, x=self.x)
