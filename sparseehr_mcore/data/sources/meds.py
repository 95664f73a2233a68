"""MEDS (Medical Event Data Standard) parquet: `data/**/*.parquet` with subject_id, time, code.

MEDS codes are `VOCABULARY//CODE` (e.g. `ICD10CM//E11.9`, `ICD9CM//250.00`). Rows with code
`MEDS_BIRTH` give the birth year, `GENDER//F`-style rows (time null) the sex; other rows without a
time are `missing_value`; vocabularies we do not know are `unknown_code_system` unless listed in
`--extra-code-systems`.
"""

from __future__ import annotations

import polars as pl

from sparseehr_mcore.data.ledger import Ledger
from sparseehr_mcore.data.sources.base import (
    EVENT_COLUMNS,
    ORIGIN,
    SourceReader,
    TableLayout,
    TableSpec,
    drop_missing,
    normalise_systems,
    parse_dates,
)

BIRTH_CODE = "MEDS_BIRTH"
GENDER_PREFIX = "GENDER//"


class MedsReader(SourceReader):
    """MEDS data shards (every parquet file under `data/`, or under the input directory)."""

    name = "meds"
    tables = (TableSpec("data", ("subject_id", "time", "code"), "subject_id"),)
    layout = TableLayout(folders=("data", ""), shards="**/*.parquet")  # a MEDS root, or its data/ folder

    def clean(self, table: str, frame: pl.DataFrame, ledger: Ledger) -> pl.DataFrame:
        frame = drop_missing(frame.rename({"subject_id": "patient_id"}), ["patient_id", "code"], ledger)
        code = pl.col("code")
        static = code.str.starts_with(GENDER_PREFIX)
        statics = frame.filter(static).select(
            "patient_id", kind=pl.lit("sex"), value=code.str.slice(len(GENDER_PREFIX)), date=pl.lit(None, pl.Date), *ORIGIN
        )
        dated = parse_dates(frame.filter(~static), "time", ledger, self.limits)
        births = dated.filter(code == BIRTH_CODE).select(
            "patient_id", "date", *ORIGIN, kind=pl.lit("birth"), value=pl.lit(None, pl.Utf8)
        )
        events = dated.filter(code != BIRTH_CODE).with_columns(
            code_system=code.str.split("//").list.first(), code=code.str.split("//").list.last()
        )
        events = normalise_systems(events, "code_system", ledger, extra=self.extra_code_systems)
        events = events.with_columns(visit_id=pl.lit(None, pl.Utf8)).select(
            *EVENT_COLUMNS, *ORIGIN, kind=pl.lit("event"), value=pl.lit(None, pl.Utf8)
        )
        nothing = {"system": pl.lit(None, pl.Utf8), "code": pl.lit(None, pl.Utf8), "visit_id": pl.lit(None, pl.Utf8)}
        statics = statics.with_columns(**nothing)
        births = births.with_columns(**nothing)
        columns = ["patient_id", "kind", "value", "date", "system", "code", "visit_id", *ORIGIN]
        return pl.concat([f.select(columns) for f in (statics, births, events)])

    def assemble(self, frames: dict[str, pl.DataFrame], ledger: Ledger) -> tuple[pl.DataFrame, pl.DataFrame]:
        rows = frames["data"]
        events = rows.filter(pl.col("kind") == "event").select(*EVENT_COLUMNS, *ORIGIN)
        # Static rows become one patient row; they count as kept rows of their table.
        static_rows = rows.filter(pl.col("kind") != "event")
        for table, count in static_rows.group_by("_table").len().iter_rows():
            ledger.keep(table, count)
        sex = static_rows.filter(pl.col("kind") == "sex").group_by("patient_id").agg(sex=pl.col("value").min())
        birth = static_rows.filter(pl.col("kind") == "birth").group_by("patient_id").agg(
            birth_year=pl.col("date").min().dt.year().cast(pl.Int32)
        )
        ids = pl.concat([events.select("patient_id"), static_rows.select("patient_id")]).unique()
        patients = (
            ids.join(sex, on="patient_id", how="left")
            .join(birth, on="patient_id", how="left")
            .with_columns(region=pl.lit(None, pl.Utf8), _table=pl.lit("(meds subjects)"), _row=pl.lit(None, pl.Int64))
            .select("patient_id", "sex", "birth_year", "region", *ORIGIN)
        )
        return patients, events
