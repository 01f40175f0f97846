"""Figures about hardware: the roofline of a machine with workloads placed on it."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from ...analysis.cost import Workload, attainable_flops, ridge_intensity
from .common import new_figure


def plot_roofline(workloads: list[Workload], *, peak_flops: float, bandwidth: float,
                  title: str, measured: Mapping[str, float] | None = None) -> Figure:
    """A log-log roofline: attainable FLOP/s against arithmetic intensity (FLOPs per byte).

    The roof is min(peak_flops, intensity × bandwidth). Each workload is a hollow marker on the
    roof at its intensity (the best it could do); ``measured`` ({name: FLOP/s achieved}) adds a
    filled marker below it, so the gap between the two is the time lost to overhead.
    """
    if not workloads:
        raise ValueError("workloads is empty: pass a list of analysis.cost.Workload")
    measured = dict(measured or {})
    unknown = set(measured) - {w.name for w in workloads}
    if unknown:
        raise ValueError(f"measured names {sorted(unknown)} are not among the workloads")
    intensities = [w.intensity for w in workloads]
    ridge = ridge_intensity(peak_flops, bandwidth)
    low, high = min(*intensities, ridge) / 4, max(*intensities, ridge) * 4
    x = np.geomspace(low, high, 200)
    figure, axes = new_figure(width=6.8, height=4.4)
    ax = axes[0, 0]
    ax.plot(x, np.minimum(peak_flops, x * bandwidth), color="black", linewidth=1.5,
            label=f"roof: {peak_flops / 1e9:.3g} GFLOP/s, {bandwidth / 1e9:.3g} GB/s")
    ax.axvline(ridge, color="0.6", linestyle=":", linewidth=1)
    for index, workload in enumerate(workloads):
        colour = f"C{index % 10}"
        roof = attainable_flops(workload.intensity, peak_flops, bandwidth)
        ax.scatter([workload.intensity], [roof], facecolors="none", edgecolors=colour, s=50,
                   label=workload.name)
        if workload.name in measured:
            achieved = measured[workload.name]
            ax.scatter([workload.intensity], [achieved], color=colour, s=30)
            ax.plot([workload.intensity] * 2, [achieved, roof], color=colour, linewidth=0.8,
                    linestyle="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set(title=title, xlabel="arithmetic intensity (FLOPs per byte moved)",
           ylabel="FLOP/s")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    return figure
