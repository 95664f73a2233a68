"""The binary endpoint of the paper's tables 5-6: is a code set (default diabetes, ICD-10 E08-E13)
in the next visit? A ranking predicts yes when any code of the set ranks within its top k_cls.

The threshold k_cls is chosen on a validation half of the patients (highest balanced accuracy,
ties to the smaller k) and reported on the other half, the test half; the sweep over every k on
both halves is reported too. Targets outside the vocabulary cannot be told apart, so a visit is
positive only through its known codes (the report gives the number of visits with unknown codes).
"""

from __future__ import annotations

import numpy as np

DEFAULT_K_CLS = (1, 3, 5, 10, 20, 50, 100)


def parse_code_ranges(text: str) -> tuple[str, ...]:
    """Code prefixes of a set given as 'E08-E13' or 'E08,E09,E10' or 'E08-E13,O24' (3-character
    category ranges within one letter)."""
    prefixes: list[str] = []
    for part in (p.strip().upper().replace(".", "") for p in text.split(",") if p.strip()):
        if "-" in part:
            low, high = part.split("-", 1)
            if len(low) != 3 or len(high) != 3 or low[0] != high[0] or not (low[1:].isdigit() and high[1:].isdigit()):
                raise ValueError(f"code range {part!r}: give 3-character categories of one letter, e.g. E08-E13")
            prefixes += [f"{low[0]}{n:02d}" for n in range(int(low[1:]), int(high[1:]) + 1)]
        else:
            prefixes.append(part)
    if not prefixes:
        raise ValueError("empty code set")
    return tuple(dict.fromkeys(prefixes))


def classification(labels: np.ndarray, predicted: np.ndarray) -> dict[str, float | None]:
    """Precision, recall, accuracy, F1 and balanced accuracy (None where undefined)."""
    labels, predicted = labels.astype(bool), predicted.astype(bool)
    tp = int((labels & predicted).sum())
    fp = int((~labels & predicted).sum())
    fn = int((labels & ~predicted).sum())
    tn = int((~labels & ~predicted).sum())
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    specificity = tn / (tn + fp) if tn + fp else None
    if precision is None or recall is None:
        f1 = None
    else:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    balanced = (recall + specificity) / 2 if recall is not None and specificity is not None else None
    total = tp + fp + fn + tn
    return {"precision": precision, "recall": recall, "accuracy": (tp + tn) / total if total else None, "f1": f1,
            "balanced_accuracy": balanced, "positives": tp + fn, "negatives": tn + fp}


def validation_patients(patients: np.ndarray, *, seed: int) -> np.ndarray:
    """Per visit, whether its patient is in the validation half (a seeded draw per patient)."""
    unique = np.unique(patients)
    chosen = unique[np.random.default_rng(seed).permutation(len(unique))[: len(unique) // 2]]
    return np.isin(patients, chosen)


def endpoint_report(labels: np.ndarray, min_rank: np.ndarray, patients: np.ndarray, *, k_cls=DEFAULT_K_CLS,
                    seed: int) -> dict:
    """The sweep on validation and test halves and the test figures at the chosen k_cls.

    Args:
        labels: per visit, whether its known diagnoses hold a code of the set.
        min_rank: per visit, the best (0-based) rank of any code of the set in the ranking.
        patients: per visit, its patient.
    """
    validation = validation_patients(patients, seed=seed)
    sweep = {
        half: {k: classification(labels[mask], min_rank[mask] < k) for k in k_cls}
        for half, mask in (("validation", validation), ("test", ~validation))
    }
    scored = [(k, v["balanced_accuracy"]) for k, v in sweep["validation"].items() if v["balanced_accuracy"] is not None]
    chosen = max(scored, key=lambda item: (item[1], -item[0]))[0] if scored else None
    note = None
    if chosen is None:
        positives = int(labels[validation].sum())
        note = (f"k_cls cannot be chosen: the validation half has {positives} positive and "
                f"{int(validation.sum()) - positives} negative visits (balanced accuracy needs both)")
    return {
        "note": note,
        "validation_visits": int(validation.sum()), "test_visits": int((~validation).sum()),
        "chosen_k_cls": chosen, "test_at_chosen": sweep["test"][chosen] if chosen is not None else None,
        "sweep": sweep,
    }
