"""Step-time comparison of variants whose steps alternate (one round = one step of each).

Absolute times drift on a shared machine; a ratio taken within one round sees the same drift in
numerator and denominator, so the median of per-round ratios is the figure to trust, and its
interquartile range says how noisy the machine was (benchmarks/train_step.py does the same).
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class RatioSummary:
    """Median of per-round ratios and their interquartile range."""

    median: float
    q1: float
    q3: float
    rounds: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """(q1, median, q3) of `values`; all three the value itself for a single one."""
    if len(values) == 1:
        return (values[0],) * 3
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, median, q3


def per_round_ratio(numerator: list[float], denominator: list[float]) -> RatioSummary:
    """Summary of `numerator[i] / denominator[i]` over rounds i.

    Args:
        numerator: seconds per step of one variant, one per round.
        denominator: seconds per step of the baseline, same rounds.
    """
    if len(numerator) != len(denominator) or not numerator:
        raise ValueError(f"need the same, non-zero number of rounds; got {len(numerator)} and {len(denominator)}")
    q1, median, q3 = quartiles([a / b for a, b in zip(numerator, denominator)])
    return RatioSummary(median=median, q1=q1, q3=q3, rounds=len(numerator))
