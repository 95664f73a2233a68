"""The visit index beside each split dataset: where each patient's visits begin, in bundles.

Tokens carry day bundles, not visits: one MIMIC admission becomes several bundles (procedure days,
then the discharge-day diagnoses), a claims visit usually one. Next-visit evaluation scores
visits, so preprocessing records them in a sidecar `<split>.visits.npy` beside `<split>.bin/.idx`:
an int32 array of shape (visits, 2), rows (document, first bundle) in dataset order, where
`document` is the patient's index in the split dataset and `first bundle` the 0-based ordinal of
the day bundle the visit begins with. A visit runs until the next visit of the patient begins (or
the record ends). Which bundles open visits is decided in `buckets._bundles_opening_visits`.

The file is `numpy.save` output: plain, deterministic bytes, readable without this package.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl

from sparseehr_mcore.data.ledger import PreprocessError
from sparseehr_mcore.data.timeline import patient_positions

VISITS_SUFFIX = ".visits.npy"


def visits_path(prefix: str | Path) -> Path:
    return Path(f"{prefix}{VISITS_SUFFIX}")


def visit_starts(patients: pl.DataFrame, events: pl.DataFrame) -> np.ndarray:
    """(patient position in `patients`, first bundle ordinal) of every visit of a bucket.

    Args:
        patients: the bucket's patients in dataset order.
        events: their events grouped by patient in the same order, by day within a patient, with
            `opens_visit` constant over each (patient, day) bundle.
    """
    if events.height == 0:
        return np.zeros((0, 2), dtype=np.int64)
    p = patient_positions(patients, events)
    dates = events["date"].to_physical().to_numpy()
    new_bundle = np.ones(len(p), dtype=bool)
    new_bundle[1:] = (p[1:] != p[:-1]) | (dates[1:] != dates[:-1])
    bundle_patient = p[new_bundle]
    # Ordinal of each bundle within its patient: global bundle number minus the patient's first.
    number = np.arange(len(bundle_patient))
    first_of_patient = np.ones(len(bundle_patient), dtype=bool)
    first_of_patient[1:] = bundle_patient[1:] != bundle_patient[:-1]
    ordinal = number - np.maximum.accumulate(np.where(first_of_patient, number, 0))
    opens = events["opens_visit"].to_numpy()[new_bundle]
    return np.stack([bundle_patient[opens], ordinal[opens]], axis=1).astype(np.int64)


def write_visits(prefix: str | Path, rows: np.ndarray) -> None:
    """Write `<prefix>.visits.npy` (rows of (document, first bundle)) atomically."""
    path = visits_path(prefix)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(temporary, "wb") as stream:
        np.save(stream, np.asarray(rows, dtype=np.int32).reshape(-1, 2), allow_pickle=False)
    os.replace(temporary, path)


def merge_visits(parts: list[Path], documents_per_part: list[int], prefix: str | Path) -> int:
    """Concatenate the visit indices of dataset parts merged in this order; returns the visit count."""
    merged, before = [], 0
    for part, documents in zip(parts, documents_per_part):
        rows = read_visit_rows(part)
        merged.append(rows + np.array([before, 0], dtype=rows.dtype))
        before += documents
    rows = np.concatenate(merged) if merged else np.zeros((0, 2), dtype=np.int32)
    write_visits(prefix, rows)
    return len(rows)


def read_visit_rows(prefix: str | Path) -> np.ndarray:
    """The (document, first bundle) rows of `<prefix>.visits.npy`.

    Raises:
        PreprocessError: the file is absent or not a visit index.
    """
    path = visits_path(prefix)
    if not path.is_file():
        raise PreprocessError(
            f"{path} not found: the dataset was preprocessed before visit indices existed; rerun "
            "tools/preprocess_ehr.py, or evaluate day bundles as visits"
        )
    rows = np.load(path, allow_pickle=False)
    if rows.ndim != 2 or rows.shape[1] != 2 or rows.dtype != np.int32:
        raise PreprocessError(f"{path}: not a visit index (shape {rows.shape}, dtype {rows.dtype})")
    return rows


def visits_by_document(prefix: str | Path, num_documents: int) -> list[np.ndarray]:
    """Per document of the split dataset at `prefix`, the first bundle of each of its visits."""
    rows = read_visit_rows(prefix)
    if len(rows) and (rows[:, 0].min() < 0 or rows[:, 0].max() >= num_documents):
        raise PreprocessError(f"{visits_path(prefix)}: names documents outside 0..{num_documents - 1}")
    bounds = np.searchsorted(rows[:, 0], np.arange(num_documents + 1))
    return [rows[bounds[d]:bounds[d + 1], 1].astype(np.int64) for d in range(num_documents)]
