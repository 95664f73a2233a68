"""A generic events table for any other source: `events` (patient_id, date, code_system, code and
optionally visit_id) and an optional `patients` table (patient_id, sex, birth_year, region), CSV or
Parquet. Rows sharing a `visit_id` are one visit (an encounter or a stay over several days).

Code systems are matched through `base.SYSTEM_ALIASES` (ICD9, ICD-10-CM, HCPCS, ...); systems
beyond diagnoses and procedures pass through when listed in `--extra-code-systems`, otherwise they
are dropped as `unknown_code_system`.
"""

from __future__ import annotations

import polars as pl

from sparseehr_mcore.data.ledger import Ledger
from sparseehr_mcore.data.sources.base import (
    EVENT_COLUMNS,
    ORIGIN,
    SourceReader,
    TableSpec,
    drop_missing,
    empty_patients,
    normalise_systems,
    parse_dates,
)


class EventsTableReader(SourceReader):
    """`events` plus optional `patients`."""

    name = "events"
    visits = "the events table's visit_id column (where present)"
    tables = (
        TableSpec("events", ("patient_id", "date", "code_system", "code"), "patient_id", optional_columns=("visit_id",)),
        TableSpec("patients", ("patient_id", "sex", "birth_year", "region"), "patient_id", role="patients"),
    )
    optional_tables = ("patients",)

    def clean(self, table: str, frame: pl.DataFrame, ledger: Ledger) -> pl.DataFrame:
        frame = drop_missing(frame, ["patient_id"], ledger)
        if table == "patients":
            return frame.select(
                "patient_id", "sex", pl.col("birth_year").cast(pl.Int32, strict=False), "region", *ORIGIN
            )
        frame = drop_missing(frame, ["code_system", "code"], ledger)
        frame = parse_dates(frame.rename({"date": "date_text"}), "date_text", ledger, self.limits)
        frame = normalise_systems(frame, "code_system", ledger, extra=self.extra_code_systems)
        return frame.select(*EVENT_COLUMNS, *ORIGIN)

    def assemble(self, frames: dict[str, pl.DataFrame], ledger: Ledger) -> tuple[pl.DataFrame, pl.DataFrame]:
        patients = frames.get("patients")
        if patients is None:  # no patient table: every patient with events, without attributes
            patients = empty_patients().vstack(
                frames["events"].select("patient_id").unique().with_columns(
                    sex=pl.lit(None, pl.Utf8), birth_year=pl.lit(None, pl.Int32), region=pl.lit(None, pl.Utf8),
                    _table=pl.lit(None, pl.Utf8), _row=pl.lit(None, pl.Int64),
                ).select(empty_patients().columns)
            )
        return patients, frames["events"]
