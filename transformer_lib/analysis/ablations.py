"""Summaries of an ablation sweep (the JSON that ``tlib-ablate`` writes): per variant the seeds'
validation bits per byte, their mean and range, and which variants differ from the baseline by
more than the seeds do."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VariantSummary:
    name: str
    bits_per_byte: tuple[float, ...]  # one per seed, in seed order
    parameters: int
    tokens_per_s: float  # mean over seeds

    @property
    def mean(self) -> float:
        return sum(self.bits_per_byte) / len(self.bits_per_byte)

    @property
    def low(self) -> float:
        return min(self.bits_per_byte)

    @property
    def high(self) -> float:
        return max(self.bits_per_byte)

    @property
    def spread(self) -> float:
        """Half the range of the seeds: the ``±`` of ``mean ± spread``."""
        return (self.high - self.low) / 2


def summarise_ablations(results: dict) -> dict[str, VariantSummary]:
    """One summary per variant with at least one finished run, in the file's order."""
    variants = results.get("variants")
    if not isinstance(variants, dict) or not variants:
        raise ValueError("not an ablation results file: it has no 'variants' (write one with "
                         "python -m transformer_lib.ablate --out FILE)")
    summaries = {}
    for name, entry in variants.items():
        runs = sorted(entry["runs"], key=lambda run: run["seed"])
        if runs:
            summaries[name] = VariantSummary(
                name, tuple(float(run["val_bpb"]) for run in runs),
                int(runs[0]["parameters"]),
                sum(float(run["tokens_per_s"]) for run in runs) / len(runs))
    return summaries


def clear_differences(summaries: dict[str, VariantSummary],
                      baseline: str = "baseline") -> dict[str, float]:
    """Variants whose every seed lies on one side of every baseline seed: name -> mean
    difference in bits per byte (positive: worse than the baseline). Others are within noise."""
    if baseline not in summaries:
        raise KeyError(f"no {baseline!r} variant among {sorted(summaries)}")
    base = summaries[baseline]
    found = {}
    for name, summary in summaries.items():
        if name != baseline and (summary.low > base.high or summary.high < base.low):
            found[name] = summary.mean - base.mean
    return found
