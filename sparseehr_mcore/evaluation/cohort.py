"""The visits an evaluation scores, read from a preprocessed dataset and its visit index.

For every visit after a patient's first: the context is every token up to and including the
`[BEGIN]` of the visit's first bundle (left-truncated like training, to leave room for the
roll-out), the target is the set of diagnosis codes in the visit's bundles. Diagnoses outside the
vocabulary (`[UNK:DX]`) are counted per visit, never dropped. Visits without any diagnosis
(procedure-only) have nothing to predict and are counted as skipped.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sparseehr_mcore.data.indexed import open_dataset
from sparseehr_mcore.data.visits import visits_by_document
from sparseehr_mcore.evaluation.codes import CodeSpace
from sparseehr_mcore.evaluation.config import VISIT_MODES
from sparseehr_mcore.tokenization.sequences import truncate_left

@dataclass(frozen=True)
class Visit:
    """One visit to predict.

    Attributes:
        patient: index of the patient among all evaluated patients (the bootstrap unit).
        split, document: where the patient is in the dataset.
        number: the visit's ordinal in the patient's record (1 = the second visit).
        context: token ids the model reads (int64), ending with the visit's `[BEGIN]`.
        truncated: the context lost its oldest bundles to fit the model.
        bundles: day bundles the visit spans.
        targets: candidate columns of its distinct known diagnoses, sorted.
        unknown_targets: its `[UNK:DX]` tokens (diagnoses outside the vocabulary).
        history: candidate column -> (occurrences before the visit, last bundle ordinal seen).
    """

    patient: int
    split: str
    document: int
    number: int
    context: np.ndarray
    truncated: bool
    bundles: int
    targets: np.ndarray
    unknown_targets: int
    history: dict[int, tuple[int, int]]


@dataclass
class Cohort:
    """The scored visits and the count of every visit left out, by reason."""

    visits: list[Visit] = field(default_factory=list)
    patients: int = 0
    skipped: Counter = field(default_factory=Counter)
    splits: list[str] = field(default_factory=list)


def _bundle_spans(ids: np.ndarray, begin: int, end: int) -> list[tuple[int, int]]:
    """(position of `[BEGIN]`, position of `[END]`) of each complete bundle."""
    begins, ends = np.flatnonzero(ids == begin), np.flatnonzero(ids == end)
    count = min(len(begins), len(ends))
    return list(zip(begins[:count].tolist(), ends[:count].tolist()))


def read_cohort(
    prefixes: dict[str, str], *, codes: CodeSpace, special_ids: dict[str, int], context_length: int,
    visit_mode: str = "source", max_patients: int | None = None,
) -> Cohort:
    """The visits to score in the split datasets `prefixes` (split -> dataset prefix).

    Args:
        prefixes: split datasets, evaluated in this order.
        codes: the vocabulary's diagnosis candidates.
        special_ids: the tokenizer's special ids (`bundle_begin`, `bundle_end`).
        context_length: the most context tokens a model may read (its positions minus the roll-out).
        visit_mode: "source" (the visit index written by preprocessing) or "day-bundles" (every
            bundle is a visit).
        max_patients: stop after this many patients (None: all).
    """
    if visit_mode not in VISIT_MODES:
        raise ValueError(f"visit mode {visit_mode!r}: choose one of {', '.join(VISIT_MODES)}")
    begin, end = special_ids["bundle_begin"], special_ids["bundle_end"]
    cohort = Cohort(splits=list(prefixes))
    for split, prefix in prefixes.items():
        dataset = open_dataset(Path(prefix))  # kept alive while its memory map is read
        starts_by_document = visits_by_document(prefix, len(dataset)) if visit_mode == "source" else None
        for document in range(len(dataset)):
            if max_patients is not None and cohort.patients >= max_patients:
                return cohort
            ids = np.array(dataset[document], dtype=np.int64)
            spans = _bundle_spans(ids, begin, end)
            starts = starts_by_document[document] if starts_by_document is not None else np.arange(len(spans))
            _add_patient(cohort, ids=ids, spans=spans, starts=starts, split=split, document=document,
                         codes=codes, begin=begin, context_length=context_length)
            cohort.patients += 1
    return cohort


def _add_patient(cohort: Cohort, *, ids, spans, starts, split, document, codes: CodeSpace, begin, context_length):
    starts = [int(s) for s in starts if s < len(spans)]
    if not starts:
        cohort.skipped["patient_without_bundles"] += 1
        return
    cohort.skipped["first_visit_of_patient"] += 1
    columns = codes.column_of[ids]
    history: dict[int, tuple[int, int]] = {}
    for bundle in range(starts[0]):  # bundles before the first visit (none with a source index)
        _remember(history, columns, spans[bundle], bundle)
    boundaries = starts + [len(spans)]
    for number in range(len(starts)):
        first, stop = boundaries[number], boundaries[number + 1]
        if number > 0:
            visit_columns = np.concatenate([columns[b + 1:e] for b, e in spans[first:stop]])
            visit_ids = np.concatenate([ids[b + 1:e] for b, e in spans[first:stop]])
            targets = np.unique(visit_columns[visit_columns >= 0])
            unknown = int((visit_ids == codes.unknown_dx_id).sum()) if codes.unknown_dx_id >= 0 else 0
            if len(targets) == 0 and unknown == 0:
                cohort.skipped["visit_without_diagnoses"] += 1
            else:
                full = ids[: spans[first][0] + 1]
                context = truncate_left(full, context_length, bundle_begin=begin)
                cohort.visits.append(Visit(
                    patient=cohort.patients, split=split, document=document, number=number, context=context,
                    truncated=len(context) < len(full), bundles=stop - first, targets=targets,
                    unknown_targets=unknown, history=dict(history),
                ))
        for bundle in range(first, stop):
            _remember(history, columns, spans[bundle], bundle)


def _remember(history: dict[int, tuple[int, int]], columns: np.ndarray, span: tuple[int, int], bundle: int) -> None:
    for column in columns[span[0] + 1:span[1]]:
        if column >= 0:
            count, _ = history.get(int(column), (0, -1))
            history[int(column)] = (count + 1, bundle)
