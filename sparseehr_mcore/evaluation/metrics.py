"""Recall@K and its variants from the rank of every target code, with bootstrap intervals.

Every ranking orders the candidates by (score desc, candidate column asc); `target_ranks` gives the
0-based place of each target in it, so "in the top K" is `rank < K`. With Y a visit's known target
codes, u its targets outside the vocabulary and H_K = |top-K ∩ Y|:

* recall (Doctor AI, Chet; the headline): the mean over visits with |Y| > 0 of H_K / |Y|.
* recall, unknown in the denominator: the mean over visits with |Y| + u > 0 of H_K / (|Y| + u).
* pooled recall: sum of H_K over sum of |Y| (big visits weigh more).
* GRAM's Accuracy@K: the mean of H_K / min(K, |Y|) (1.0 is reachable for any visit size).

Intervals: 95% percentile bootstrap over patients (a patient's visits are resampled together).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_KS = (1, 3, 5, 10, 20, 50, 100)


def target_ranks(scores: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """0-based rank of each of `columns` when candidates are ordered by (score desc, column asc)."""
    columns = np.asarray(columns, dtype=np.int64)
    if len(columns) == 0:
        return np.zeros(0, dtype=np.int64)
    mine = scores[columns][:, None]
    ahead = (scores[None, :] > mine) | ((scores[None, :] == mine) & (np.arange(len(scores))[None, :] < columns[:, None]))
    return ahead.sum(axis=1).astype(np.int64)


@dataclass
class Targets:
    """The targets of a set of visits at one code level, one row per (visit, code).

    Attributes:
        visit: the visit (row of the per-visit arrays) of each target.
        column: its candidate column at this level (token or category).
        rare, repeat: whether its training count is below the rare threshold; whether the patient
            had it before the visit.
        chapter: its ICD-10 chapter.
        patient: per visit, its patient.
        unknown: per visit, its targets outside the vocabulary.
    """

    visit: np.ndarray
    column: np.ndarray
    rare: np.ndarray
    repeat: np.ndarray
    chapter: np.ndarray
    patient: np.ndarray
    unknown: np.ndarray

    @property
    def num_visits(self) -> int:
        return len(self.patient)


def _per_visit(targets: Targets, ranks: np.ndarray, ks, mask: np.ndarray | None):
    keep = np.ones(len(ranks), dtype=bool) if mask is None else mask
    visits = targets.visit[keep]
    known = np.bincount(visits, minlength=targets.num_visits).astype(np.float64)
    hits = np.stack([np.bincount(visits, weights=(ranks[keep] < k), minlength=targets.num_visits) for k in ks], 1)
    return known, hits  # [visits], [visits, len(ks)]


def _by_patient(values: np.ndarray, patient: np.ndarray, patients: int) -> np.ndarray:
    if values.ndim == 1:
        return np.bincount(patient, weights=values, minlength=patients)
    return np.stack([np.bincount(patient, weights=values[:, j], minlength=patients) for j in range(values.shape[1])], 1)


def _bootstrap(numerator: np.ndarray, denominator: np.ndarray, *, replicates: int, seed: int) -> np.ndarray:
    """[2, k] 2.5% and 97.5% percentiles of sum(num)/sum(den) over patients drawn with replacement."""
    patients = len(denominator)
    if replicates <= 0 or patients == 0:
        return np.full((2, numerator.shape[1]), np.nan)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(patients, np.full(patients, 1.0 / patients), size=replicates).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = (weights @ numerator) / (weights @ denominator)[:, None]
    return np.nanpercentile(values, [2.5, 97.5], axis=0)


def recall_table(targets: Targets, ranks: np.ndarray, *, ks=DEFAULT_KS, mask: np.ndarray | None = None,
                 bootstrap: int = 0, seed: int = 0) -> dict:
    """Every Recall@K variant (see the module docstring) over the targets `mask` selects.

    Returns:
        {"visits": scored visits, "targets": known targets, "unknown_targets": ...,
         "recall": {K: value}, "recall_ci": {K: [low, high]}, "recall_with_unknown": {K: ...},
         "pooled": {K: ...}, "pooled_ci": ..., "accuracy_gram": {K: ...}}
    """
    ks = tuple(ks)
    known, hits = _per_visit(targets, ranks, ks, mask)
    # Bootstrap units: the patients that have a scored visit here.
    _, patient = np.unique(targets.patient, return_inverse=True)
    patients = int(patient.max()) + 1 if len(patient) else 0
    scored = known > 0
    unknown = targets.unknown if mask is None else np.zeros_like(targets.unknown)
    with_unknown = (known + unknown) > 0
    out: dict = {"visits": int(scored.sum()), "targets": int(known.sum()), "unknown_targets": int(unknown.sum())}
    if not scored.any():
        for name in ("recall", "recall_with_unknown", "pooled", "accuracy_gram"):
            out[name] = {k: None for k in ks}
        return out
    recall = hits[scored] / known[scored, None]
    out["recall"] = dict(zip(ks, recall.mean(axis=0).tolist()))
    out["recall_with_unknown"] = dict(zip(ks, (hits[with_unknown] / (known + unknown)[with_unknown, None]).mean(axis=0).tolist()))
    out["pooled"] = dict(zip(ks, (hits.sum(axis=0) / known.sum()).tolist()))
    minimum = np.minimum(np.array(ks)[None, :], known[scored, None])
    out["accuracy_gram"] = dict(zip(ks, (hits[scored] / minimum).mean(axis=0).tolist()))
    if bootstrap:
        per_visit = np.zeros_like(hits)
        per_visit[scored] = recall
        mean_ci = _bootstrap(_by_patient(per_visit, patient, patients),
                             _by_patient(scored.astype(np.float64), patient, patients),
                             replicates=bootstrap, seed=seed)
        pooled_ci = _bootstrap(_by_patient(hits, patient, patients), _by_patient(known, patient, patients),
                               replicates=bootstrap, seed=seed)
        out["recall_ci"] = {k: mean_ci[:, j].tolist() for j, k in enumerate(ks)}
        out["pooled_ci"] = {k: pooled_ci[:, j].tolist() for j, k in enumerate(ks)}
    return out


def breakdowns(targets: Targets, ranks: np.ndarray, *, ks=DEFAULT_KS) -> dict:
    """Recall (mean per visit) on subsets of the targets: rare/common, new/repeated, per chapter."""
    subsets = {
        "rare": targets.rare, "common": ~targets.rare,
        "new": ~targets.repeat, "repeated": targets.repeat,
    }
    out = {name: recall_table(targets, ranks, ks=ks, mask=mask) for name, mask in subsets.items()}
    out["chapters"] = {
        str(chapter): recall_table(targets, ranks, ks=ks, mask=targets.chapter == chapter)
        for chapter in sorted(set(targets.chapter.tolist()))
    }
    return out
