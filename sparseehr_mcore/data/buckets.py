"""One bucket of patients: assemble, harmonise, dedupe, order; then timelines and token counts.

Accounting here closes every table's books: each event row ends kept or dropped with a reason
(`duplicate_row`, `malformed_code`, `unmapped_code`, `unknown_patient`), each patient row kept or
dropped (`duplicate_row`, `no_events`). Distinct source codes that map to the same canonical code
on one day collapse into one event (counted as `events_merged_in_bundle`, rows still kept).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import polars as pl

from sparseehr_mcore.data.harmonize.rules import Harmoniser
from sparseehr_mcore.data.ledger import Ledger
from sparseehr_mcore.data.partition import patient_keys, split_of
from sparseehr_mcore.data.timeline import (
    OTHER_SYSTEM_RANK,
    SYSTEM_RANK,
    CodedEvent,
    DayBundle,
    PatientTimeline,
    age_bucket,
)

SEX_CODES = {"M": "M", "MALE": "M", "F": "F", "FEMALE": "F"}
TIMELINE_EVENT_COLUMNS = ("key", "patient_id", "split", "date", "system", "code")
TIMELINE_PATIENT_COLUMNS = ("key", "patient_id", "split", "age", "sex", "region")


def _count_kept(frame: pl.DataFrame, ledger: Ledger) -> None:
    for table, count in frame.filter(pl.col("_row").is_not_null()).group_by("_table").len().iter_rows():
        ledger.keep(table, count)


def _first_rows(frame: pl.DataFrame, keys: list[str], ledger: Ledger) -> pl.DataFrame:
    """Keep the first row (by origin) of each `keys` group; count the rest as `duplicate_row`."""
    frame = frame.sort("_table", "_row", nulls_last=True)
    first = frame.select(pl.struct(keys).is_first_distinct()).to_series()
    ledger.drop_frame(frame.filter(~first & pl.col("_row").is_not_null()), "duplicate_row")
    return frame.filter(first)


def harmonise_events(events: pl.DataFrame, harmoniser: Harmoniser, ledger: Ledger) -> tuple[pl.DataFrame, Counter]:
    """Map every event through the harmoniser; returns canonical events and coverage counts.

    Coverage keys are `(source system, outcome, "events"|"codes")`.
    """
    distinct = events.select("system", "code").unique()
    rows = []
    for system, code in distinct.iter_rows():
        mapping = harmoniser.map_code(system, code)
        targets = mapping.targets or ((None, None),)
        rows.extend((system, code, mapping.outcome, t_system, t_code) for t_system, t_code in targets)
    table = pl.DataFrame(
        rows, schema={"system": pl.Utf8, "code": pl.Utf8, "outcome": pl.Utf8, "out_system": pl.Utf8, "out_code": pl.Utf8},
        orient="row",
    )
    coverage: Counter = Counter()
    outcomes = events.join(table.unique(["system", "code"]), on=["system", "code"], how="left")
    for system, outcome, count in outcomes.group_by("system", "outcome").len().iter_rows():
        coverage[(system, outcome, "events")] += count
    for system, outcome, count in table.unique(["system", "code"]).group_by("system", "outcome").len().iter_rows():
        coverage[(system, outcome, "codes")] += count
    ledger.drop_frame(outcomes.filter(pl.col("outcome") == "malformed"), "malformed_code")
    ledger.drop_frame(outcomes.filter(pl.col("outcome") == "unmapped"), "unmapped_code")
    mapped = events.join(table.filter(pl.col("out_code").is_not_null()), on=["system", "code"], how="inner")
    return mapped, coverage


def build_bucket(
    patients: pl.DataFrame, events: pl.DataFrame, *, harmoniser: Harmoniser, ledger: Ledger,
    seed: int, fractions: tuple[float, float, float],
) -> tuple[pl.DataFrame, pl.DataFrame, Counter, int]:
    """Canonical (patients, events) of one bucket in dataset order, coverage, and merged-event count."""
    events = events.with_columns(code=pl.col("code").str.strip_chars().str.to_uppercase().str.replace_all(r"\.", ""))
    events = _first_rows(events, ["patient_id", "date", "system", "code"], ledger)
    patients = _first_rows(patients, ["patient_id"], ledger)
    known = events["patient_id"].is_in(patients["patient_id"].implode())
    ledger.drop_frame(events.filter(~known), "unknown_patient")
    events = events.filter(known)
    mapped, coverage = harmonise_events(events, harmoniser, ledger)
    _count_kept(mapped.unique(["_table", "_row"]), ledger)

    with_events = patients["patient_id"].is_in(mapped["patient_id"].implode())
    ledger.drop_frame(patients.filter(~with_events & pl.col("_row").is_not_null()), "no_events")
    patients = patients.filter(with_events)
    _count_kept(patients, ledger)

    canonical = (
        mapped.select("patient_id", "date", system=pl.col("out_system"), code=pl.col("out_code"))
        .unique(["patient_id", "date", "system", "code"])
    )
    merged = mapped.height - canonical.height
    first_day = canonical.group_by("patient_id").agg(first=pl.col("date").min())
    patients = patients.join(first_day, on="patient_id", how="left").with_columns(
        age=(pl.col("first").dt.year() - pl.col("birth_year")).map_elements(age_bucket, return_dtype=pl.Utf8),
        sex=pl.col("sex").str.to_uppercase().replace_strict(SEX_CODES, default=None, return_dtype=pl.Utf8),
    )
    ids = patients["patient_id"]
    patients = patients.with_columns(
        key=patient_keys(ids), split=split_of(ids, seed=seed, fractions=fractions)
    ).sort("key", "patient_id")
    ranks = canonical.with_columns(
        rank=pl.col("system").replace_strict(SYSTEM_RANK, default=OTHER_SYSTEM_RANK, return_dtype=pl.Int32)
    )
    canonical = (
        ranks.join(patients.select("patient_id", "key", "split"), on="patient_id", how="inner")
        .sort("key", "patient_id", "date", "rank", "system", "code")
        .select(TIMELINE_EVENT_COLUMNS)
    )
    return patients.select(TIMELINE_PATIENT_COLUMNS), canonical, coverage, merged


def iter_timelines(patients: pl.DataFrame, events: pl.DataFrame) -> Iterator[tuple[str, PatientTimeline]]:
    """(split, timeline) per patient, in the frames' (dataset) order."""
    grouped = events.group_by("patient_id", maintain_order=True).agg("date", "system", "code")
    by_patient = {row[0]: row[1:] for row in grouped.iter_rows()}
    for _, patient_id, split, age, sex, region in patients.iter_rows():
        static = {key: value for key, value in (("age", age), ("sex", sex), ("region", region)) if value is not None}
        dates, systems, codes = by_patient.get(patient_id, ([], [], []))
        bundles: list[DayBundle] = []
        current_day, current = None, []
        for day, system, code in zip(dates, systems, codes):
            if day != current_day and current:
                bundles.append(DayBundle(current_day, tuple(current)))
                current = []
            current_day = day
            current.append(CodedEvent(system, code))
        if current:
            bundles.append(DayBundle(current_day, tuple(current)))
        yield split, PatientTimeline(patient_id, static, tuple(bundles))
