"""The common timeline model every source reader feeds and every tokenizer reads.

A patient is an id, static attributes (age bucket, sex, region where known) and a chronological
list of day bundles. A bundle holds the distinct harmonised events of one calendar day in a stable
order: diagnoses before procedures (`SYSTEM_RANK`), then by code system, then by code. That order
does not depend on the order rows arrived in, so the same input always gives the same tokens.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import polars as pl

# Code systems. Sources emit the left-hand systems; harmonisation leaves the canonical ones.
ICD9CM = "ICD9CM"  # ICD-9-CM diagnoses
ICD10CM = "ICD10CM"  # ICD-10-CM diagnoses (canonical)
ICD9PCS = "ICD9PCS"  # ICD-9-CM volume 3 procedures
ICD10PCS = "ICD10PCS"  # ICD-10-PCS procedures (canonical)
CPT = "CPT"  # CPT and HCPCS level II, one fixed 5-character form (canonical)

SOURCE_SYSTEMS = (ICD9CM, ICD10CM, ICD9PCS, ICD10PCS, CPT)

# Diagnoses first, then procedures; other systems (from the generic events table) after them.
SYSTEM_RANK = {ICD10CM: 0, ICD9CM: 1, ICD10PCS: 2, ICD9PCS: 3, CPT: 4}
OTHER_SYSTEM_RANK = 9

# Static attributes in the order they are emitted as the demographics prefix.
STATIC_KEYS = ("age", "sex", "region")

AGE_BUCKET_YEARS = 5
AGE_BUCKET_CAP = 90  # every age from 90 up shares one bucket (as HIPAA safe harbour asks)


def age_bucket(age_years: int) -> str:
    """The age bucket label, e.g. 47 -> '45-49', 93 -> '90+'."""
    if age_years >= AGE_BUCKET_CAP:
        return f"{AGE_BUCKET_CAP}+"
    low = max(age_years, 0) // AGE_BUCKET_YEARS * AGE_BUCKET_YEARS
    return f"{low}-{low + AGE_BUCKET_YEARS - 1}"


def age_bucket_expr(age_years: pl.Expr) -> pl.Expr:
    """`age_bucket` over a column of ages (null stays null)."""
    low = (pl.max_horizontal(age_years, 0) // AGE_BUCKET_YEARS) * AGE_BUCKET_YEARS
    label = low.cast(pl.Utf8) + "-" + (low + AGE_BUCKET_YEARS - 1).cast(pl.Utf8)
    return pl.when(age_years.is_null()).then(None).when(age_years >= AGE_BUCKET_CAP).then(
        pl.lit(f"{AGE_BUCKET_CAP}+")).otherwise(label)


def system_rank(system: str) -> int:
    return SYSTEM_RANK.get(system, OTHER_SYSTEM_RANK)


@dataclass(frozen=True, order=True)
class CodedEvent:
    """One harmonised code: its code system and its canonical code."""

    system: str
    code: str

    def sort_key(self) -> tuple[int, str, str]:
        return (system_rank(self.system), self.system, self.code)


@dataclass(frozen=True)
class DayBundle:
    """The distinct events of one day, in bundle order. `day` is None after decoding typed codes."""

    day: dt.date | None
    events: tuple[CodedEvent, ...]


@dataclass(frozen=True)
class PatientTimeline:
    """One patient: id, static attributes (`STATIC_KEYS` subset) and chronological day bundles."""

    patient_id: str
    static: dict[str, str] = field(default_factory=dict)
    bundles: tuple[DayBundle, ...] = ()

    @property
    def num_events(self) -> int:
        return sum(len(bundle.events) for bundle in self.bundles)

    def without_dates(self) -> "PatientTimeline":
        """The same timeline with the days removed (what a date-free token scheme can give back)."""
        return PatientTimeline(
            self.patient_id, dict(self.static), tuple(DayBundle(None, b.events) for b in self.bundles)
        )


def make_bundle(day: dt.date | None, events) -> DayBundle:
    """A bundle with duplicates removed and events in the documented bundle order."""
    return DayBundle(day, tuple(sorted(set(events), key=CodedEvent.sort_key)))


def patient_positions(patients: pl.DataFrame, events: pl.DataFrame) -> np.ndarray:
    """Each event's row in `patients`, for bucket frames whose events come grouped by patient."""
    run = events.select(pl.col("patient_id").rle_id().alias("run"))["run"].to_numpy()
    starts = np.flatnonzero(np.diff(run, prepend=-1))
    run_patients = events["patient_id"].gather(starts)
    if len(starts) == patients.height and run_patients.equals(patients["patient_id"], check_names=False):
        return run.astype(np.int64)  # every patient has events, in the same order (a built bucket): no join
    index = pl.DataFrame({"patient_id": patients["patient_id"], "p": np.arange(patients.height)})
    return run_patients.to_frame().join(index, on="patient_id", how="left", maintain_order="left")["p"].to_numpy()[run]
