"""One bucket of patients: assemble, harmonise, dedupe, order; then timelines and token counts.

Accounting here closes every table's books: each event row ends kept or dropped with a reason
(`duplicate_row`, `unknown_patient`, `malformed_code`, `unmapped_code`), each patient row kept or
dropped (`duplicate_row`, `no_events`). Distinct source codes that map to the same canonical code
on one day collapse into one event (counted as `events_merged_in_bundle`, rows still kept).

The work is shaped for speed at tens of millions of rows: everything that depends only on a code
(normalising, harmonising, its place in bundle order) is worked out once per distinct code in a
small table (`CodeTable`); the event rows carry integers (patient position, day, code position)
and are sorted once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl

from sparseehr_mcore.data.harmonize.rules import Harmoniser
from sparseehr_mcore.data.ledger import Ledger
from sparseehr_mcore.data.partition import patient_keys, split_of
from sparseehr_mcore.data.sources.base import AgeLimits
from sparseehr_mcore.data.timeline import CodedEvent, DayBundle, PatientTimeline, age_bucket_expr, system_rank

SEX_CODES = {"M": "M", "MALE": "M", "F": "F", "FEMALE": "F"}
TIMELINE_EVENT_COLUMNS = ("key", "patient_id", "split", "date", "system", "code", "opens_visit")
TIMELINE_PATIENT_COLUMNS = ("key", "patient_id", "split", "age", "sex", "region")
MAPPED = ("exact", "approximate", "combination", "reverse_gem", "fallback")


def _count_kept(frame: pl.DataFrame, ledger: Ledger) -> None:
    for table, count in frame.filter(pl.col("_row").is_not_null()).group_by("_table").len().iter_rows():
        ledger.keep(table, count)


def _first_rows(frame: pl.DataFrame, keys: list[str], ledger: Ledger) -> pl.DataFrame:
    """Keep the first row (by origin) of each `keys` group; count the rest as `duplicate_row`."""
    frame = frame.sort("_table", "_row", nulls_last=True)
    first = frame.select(pl.struct(keys).is_first_distinct()).to_series()
    ledger.drop_frame(frame.filter(~first & pl.col("_row").is_not_null()), "duplicate_row")
    return frame.filter(first)


@dataclass(frozen=True)
class CodeTable:
    """What every distinct source code of a bucket becomes.

    Attributes:
        raw: one row per distinct (source system, code as read): `system`, `code`, `norm` (its
            position in `norms`).
        norms: one row per distinct normalised (system, code) (stripped, upper-case, no dots),
            in bundle order of their first canonical target: `system`, `code`, `outcome`.
        targets: (norm position, canonical position) per canonical code a norm maps to.
        canonical: distinct canonical codes in bundle order: `system`, `code`.
    """

    raw: pl.DataFrame
    norms: pl.DataFrame
    targets: pl.DataFrame
    canonical: pl.DataFrame

    @classmethod
    def build(cls, events: pl.DataFrame, harmoniser: Harmoniser) -> "CodeTable":
        raw = events.select("system", "code").unique().with_columns(
            norm_code=pl.col("code").str.strip_chars().str.to_uppercase().str.replace_all(r"\.", "")
        )
        norm_pairs = sorted(set(raw.select("system", "norm_code").iter_rows()))
        mappings = [harmoniser.map_code(system, code) for system, code in norm_pairs]
        canonical = sorted({t for m in mappings for t in m.targets}, key=lambda t: (system_rank(t[0]), t[0], t[1]))
        canonical_index = {target: i for i, target in enumerate(canonical)}
        # Bundle order of a norm: its first canonical target (norms without one go last).
        order = sorted(
            range(len(norm_pairs)),
            key=lambda i: (min((canonical_index[t] for t in mappings[i].targets), default=len(canonical)),
                           norm_pairs[i]),
        )
        norms = pl.DataFrame(
            {"system": [norm_pairs[i][0] for i in order], "code": [norm_pairs[i][1] for i in order],
             "outcome": [mappings[i].outcome for i in order]},
            schema={"system": pl.Utf8, "code": pl.Utf8, "outcome": pl.Utf8},
        )
        position = {norm_pairs[i]: n for n, i in enumerate(order)}
        targets = pl.DataFrame(
            [(n, canonical_index[t]) for n, i in enumerate(order) for t in sorted(mappings[i].targets,
                                                                                 key=canonical_index.get)],
            schema={"norm": pl.UInt32, "canon": pl.UInt32}, orient="row",
        )
        raw = raw.select(
            "system", "code",
            norm=pl.Series([position[pair] for pair in raw.select("system", "norm_code").iter_rows()], dtype=pl.UInt32),
        )
        canonical_frame = pl.DataFrame(canonical, schema={"system": pl.Utf8, "code": pl.Utf8}, orient="row")
        return cls(raw=raw, norms=norms, targets=targets, canonical=canonical_frame)


def _repeats_previous_row(*columns: str) -> pl.Expr:
    """True where a row equals the row before it in every one of `columns` (sorted frames)."""
    return pl.all_horizontal([pl.col(c) == pl.col(c).shift() for c in columns]).fill_null(False)


def _positions(patients: pl.DataFrame, events: pl.DataFrame) -> pl.DataFrame:
    """`p`: each event's patient position; patients absent from `patients` get positions after them."""
    events = events.join(patients.select("patient_id", "p"), on="patient_id", how="left", maintain_order="left")
    if events["p"].null_count():
        unknown = events.filter(pl.col("p").is_null()).select("patient_id").unique(maintain_order=True)
        unknown = unknown.with_columns(q=pl.int_range(patients.height, patients.height + unknown.height, dtype=pl.UInt32))
        events = events.join(unknown, on="patient_id", how="left", maintain_order="left").with_columns(
            p=pl.coalesce("p", "q")
        ).drop("q")
    return events


def _details(rows: pl.DataFrame, dropped: pl.DataFrame, codes: CodeTable) -> pl.DataFrame:
    """Dropped rows (`dropped["i"]` of `rows`) as the ledger shows them: normalised code, origin."""
    return rows.select("patient_id", "date", "system", "_table", "_row").gather(dropped["i"]).select(
        "patient_id", "date", "system", codes.norms["code"].gather(dropped["norm"]), "_table", "_row"
    )


def _coverage(events: pl.DataFrame, codes: CodeTable) -> Counter:
    """`(source system, outcome, "events"|"codes")` counts over the bucket's checked events."""
    counts = np.bincount(events["norm"].to_numpy(), minlength=codes.norms.height)
    coverage: Counter = Counter()
    for (system, outcome), count in zip(codes.norms.select("system", "outcome").iter_rows(), counts):
        if count:
            coverage[(system, outcome, "events")] += int(count)
            coverage[(system, outcome, "codes")] += 1
    return coverage


def _bundle_starts(frame: pl.DataFrame) -> np.ndarray:
    """Row positions where a new day bundle (`p`, `date`) begins in a frame sorted by both."""
    p, day = frame["p"].to_numpy(), frame["date"].to_physical().to_numpy()
    change = np.ones(len(p), dtype=bool)
    change[1:] = (p[1:] != p[:-1]) | (day[1:] != day[:-1])
    return np.flatnonzero(change)


def _bundles_opening_visits(events: pl.DataFrame, visit_ids: pl.Series) -> np.ndarray:
    """`opens_visit` per day bundle of the kept `events` (sorted by `p`, `date`), in bundle order.

    A visit begins on the first day any of its kept events falls on; an event without a visit id
    is a visit of its own day. A bundle opens a visit unless it holds an event of a visit that
    began on an earlier day: so an admission's procedure days and its discharge-day diagnoses
    form one visit, and a day without visit ids is one visit.
    """
    starts = _bundle_starts(events)
    if visit_ids.null_count() == len(visit_ids):  # no visit ids (or no events): every bundle is a visit
        return np.ones(len(starts), dtype=bool)
    visit_day = (
        events.select("p", "date", visit=visit_ids)
        .select(pl.when(pl.col("visit").is_null()).then(pl.col("date"))
                .otherwise(pl.col("date").min().over("p", "visit")).to_physical())
        .to_series().to_numpy()
    )
    return np.minimum.reduceat(visit_day, starts) == events["date"].to_physical().to_numpy()[starts]


def _patient_attributes(patients: pl.DataFrame, first_day: pl.DataFrame) -> pl.DataFrame:
    return patients.join(first_day, on="p", how="left", maintain_order="left").with_columns(
        age=age_bucket_expr(pl.col("first").dt.year() - pl.col("birth_year")),
        sex=pl.col("sex").str.to_uppercase().replace_strict(SEX_CODES, default=None, return_dtype=pl.Utf8),
    )


def _without_impossible_ages(
    patients: pl.DataFrame, events: pl.DataFrame, *, rows: pl.DataFrame, codes: CodeTable, ages: AgeLimits,
    ledger: Ledger,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(patients, events) less the patients whose age at their first event is implausible: the
    patient row first (strict mode names it), then each of their events, as `impossible_age`."""
    first = events.group_by("p").agg(first_year=pl.col("date").min().dt.year())
    aged = patients.join(first, on="p", how="inner").with_columns(age=pl.col("first_year") - pl.col("birth_year"))
    impossible = aged.filter(ages.implausible(pl.col("age")).fill_null(False))
    if impossible.is_empty():
        return patients, events
    ledger.drop_frame(
        impossible.filter(pl.col("_row").is_not_null()).select("patient_id", "birth_year", "age", "_table", "_row"),
        "impossible_age",
    )
    dropped = events["p"].is_in(impossible["p"].implode())
    ledger.drop_frame(_details(rows, events.filter(dropped), codes), "impossible_age")
    return patients.filter(~pl.col("p").is_in(impossible["p"].implode())), events.filter(~dropped)


def build_bucket(
    patients: pl.DataFrame, events: pl.DataFrame, *, harmoniser: Harmoniser, ledger: Ledger,
    seed: int, fractions: tuple[float, float, float], ages: AgeLimits = AgeLimits(),
) -> tuple[pl.DataFrame, pl.DataFrame, Counter, int]:
    """Canonical (patients, events) of one bucket in dataset order, coverage, and merged-event count."""
    patients = _first_rows(patients, ["patient_id"], ledger)
    ids = patients["patient_id"]
    # Dataset order of patients (key, then id) decided up front: `p` is each patient's place in it.
    patients = (
        patients.with_columns(key=patient_keys(ids), split=split_of(ids, seed=seed, fractions=fractions))
        .sort("key", "patient_id")
        .with_columns(p=pl.int_range(pl.len(), dtype=pl.UInt32))
    )
    codes = CodeTable.build(events, harmoniser)
    events = events.join(codes.raw, on=["system", "code"], how="left", maintain_order="left")
    rows = _positions(patients, events)
    # One sort of integer keys (the rows' text stays behind, `i` points back to it) gives the dataset
    # order and puts a row's duplicates right after it, first by origin.
    origin = pl.col("_table").cast(pl.Enum(sorted(rows["_table"].unique().to_list())))
    events = rows.select("p", "date", "norm", "_table", "_row", origin=origin).with_row_index("i").sort(
        "p", "date", "norm", "origin", "_row"
    )
    duplicate = events.select(_repeats_previous_row("p", "date", "norm")).to_series()
    if duplicate.any():
        ledger.drop_frame(_details(rows, events.filter(duplicate), codes), "duplicate_row")
        events = events.filter(~duplicate)
    unknown = events["p"] >= patients.height
    if unknown.any():
        ledger.drop_frame(_details(rows, events.filter(unknown), codes), "unknown_patient")
        events = events.filter(~unknown)

    coverage = _coverage(events, codes)
    outcome = codes.norms["outcome"].gather(events["norm"])
    for reason, dropped in (("malformed_code", "malformed"), ("unmapped_code", "unmapped")):
        bad = outcome == dropped
        if bad.any():
            details = _details(rows, events.filter(bad), codes).with_columns(
                outcome=pl.lit(dropped), out_system=pl.lit(None, pl.Utf8), out_code=pl.lit(None, pl.Utf8)
            )
            ledger.drop_frame(details, reason)
    events = events.filter(outcome.is_in(MAPPED))
    patients, events = _without_impossible_ages(patients, events, rows=rows, codes=codes, ages=ages, ledger=ledger)
    _count_kept(events, ledger)
    opening = _bundles_opening_visits(events, rows["visit_id"].gather(events["i"]))

    mapped = events.select("p", "date", "norm").join(codes.targets, on="norm", how="inner", maintain_order="left")
    if mapped.height != events.height:  # a combination code became several events: order them in again
        mapped = mapped.sort("p", "date", "canon")
    canonical = mapped.filter(~_repeats_previous_row("p", "date", "canon"))
    merged = mapped.height - canonical.height

    first_day = canonical.group_by("p").agg(first=pl.col("date").first())
    with_events = patients["p"].is_in(first_day["p"].implode())
    ledger.drop_frame(
        patients.filter(~with_events & pl.col("_row").is_not_null()).drop("key", "split", "p"), "no_events"
    )
    patients = _patient_attributes(patients.filter(with_events), first_day)
    _count_kept(patients, ledger)
    # `canonical` holds the same day bundles as the kept events, in the same (p, date) order: each
    # bundle's flag repeats over its rows. Patients are sorted by `p`: a search finds each row's.
    starts = _bundle_starts(canonical)
    if len(starts) != len(opening):
        raise RuntimeError(f"internal error: {len(opening)} day bundles before harmonisation, {len(starts)} after")
    opens_visit = np.repeat(opening, np.diff(np.append(starts, canonical.height)))
    patient_rows = np.searchsorted(patients["p"].to_numpy(), canonical["p"].to_numpy())
    events = pl.concat([
        patients.select("key", "patient_id", "split")[patient_rows],
        canonical.select(
            "date", codes.canonical["system"].gather(canonical["canon"]),
            codes.canonical["code"].gather(canonical["canon"]), opens_visit=pl.Series(opens_visit, dtype=pl.Boolean),
        ),
    ], how="horizontal")
    return patients.select(TIMELINE_PATIENT_COLUMNS), events, coverage, merged


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
