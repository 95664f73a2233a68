"""Model-free rankings that make a model's Recall@K mean something, scored on the same visits.

* population frequency: every visit gets the same ranking, codes by their count in the training
  corpus of the model's tokenizer (`term_counts.json`; without it, vocabulary order, which is the
  same order by construction).
* history: the patient's own earlier diagnoses, most frequent first, ties by recency (the latest
  bundle first), then every other code by population frequency. Repeats make next-visit prediction
  easy; this baseline shows how easy.

Scores are built so that ranking by (score desc, candidate column asc) gives these orders: the
columns are in vocabulary order, which is descending training count.
"""

from __future__ import annotations

import numpy as np

from sparseehr_mcore.evaluation.codes import CodeSpace
from sparseehr_mcore.evaluation.cohort import Visit
from sparseehr_mcore.evaluation.protocols import Scores

# Counts and bundle ordinals fit below this, so count * it + recency orders by count, then recency.
RECENCY_SCALE = 1e7


def population_counts(codes: CodeSpace, term_counts: dict[str, int] | None) -> np.ndarray:
    """Training count of every candidate; without saved counts, a stand-in that decreases with the
    vocabulary order (which is descending count)."""
    if term_counts is None:
        return (codes.num_candidates - np.arange(codes.num_candidates)).astype(np.float64)
    return np.array([term_counts.get(f"DX:{code}", 0) for code in codes.dx_codes], dtype=np.float64)


class PopulationFrequency:
    def __init__(self, codes: CodeSpace, counts: np.ndarray) -> None:
        self.tokens = counts
        self.categories = counts @ codes.category_matrix()

    def __call__(self, visits: list[Visit]) -> Scores:
        return Scores(tokens=np.tile(self.tokens, (len(visits), 1)),
                      categories=np.tile(self.categories, (len(visits), 1)))


class History:
    def __init__(self, codes: CodeSpace, counts: np.ndarray) -> None:
        self.codes = codes
        self.population = PopulationFrequency(codes, counts)
        # Population scores squeezed into [0, 1): below any history code's score, same order.
        self.padding = self._squeeze(self.population.tokens)
        self.category_padding = self._squeeze(self.population.categories)

    @staticmethod
    def _squeeze(values: np.ndarray) -> np.ndarray:
        return values / (values.max() + 1.0) if len(values) else values

    def __call__(self, visits: list[Visit]) -> Scores:
        tokens = np.tile(self.padding, (len(visits), 1))
        categories = np.tile(self.category_padding, (len(visits), 1))
        for row, visit in enumerate(visits):
            by_category: dict[int, tuple[int, int]] = {}
            for column, (count, last) in visit.history.items():
                tokens[row, column] = 1.0 + count * RECENCY_SCALE + last
                category = int(self.codes.category_of[column])
                total, latest = by_category.get(category, (0, -1))
                by_category[category] = (total + count, max(latest, last))
            for category, (count, last) in by_category.items():
                categories[row, category] = 1.0 + count * RECENCY_SCALE + last
        return Scores(tokens=tokens, categories=categories)
