"""OMOP CDM (v5.x): person, visit_occurrence, condition_occurrence, procedure_occurrence.

The pipeline reads *source values* (the codes the health system recorded), not OMOP standard
concepts, so harmonisation is the same for every source. A condition source value is ICD-9-CM if it
is all digits or dated before the US switch to ICD-10-CM (2015-10-01), ICD-10-CM otherwise. A
procedure source value is CPT/HCPCS if it has the 5-character CPT/HCPCS form, ICD-9 procedure if
it is 2 to 4 digits, ICD-10-PCS if 7 characters; anything else is `malformed_code`.
Visits are counted (read/kept); events keep their own dates and carry `visit_occurrence_id` (an
optional column) as their visit. A visit whose `visit_end_date` precedes its start is dropped with
the conditions and procedures pointing at it (`discharge_before_admission`).
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from sparseehr_mcore.data.ledger import Ledger
from sparseehr_mcore.data.sources.base import (
    EVENT_COLUMNS,
    ORIGIN,
    SourceReader,
    TableSpec,
    drop_missing,
    parse_dates,
    without_implausible_visits,
)
from sparseehr_mcore.data.timeline import CPT, ICD9CM, ICD9PCS, ICD10CM, ICD10PCS

ICD10_START = dt.date(2015, 10, 1)
# OMOP gender concepts: 8507 MALE, 8532 FEMALE.
GENDER_CONCEPTS = {"8507": "M", "8532": "F"}


class OmopReader(SourceReader):
    """OMOP CDM tables, codes from `*_source_value`."""

    name = "omop"
    visits = "visit_occurrence_id of conditions and procedures (where present)"
    tables = (
        TableSpec("person", ("person_id", "gender_concept_id", "year_of_birth"), "person_id", role="patients"),
        TableSpec(
            "visit_occurrence", ("person_id", "visit_occurrence_id", "visit_start_date"), "person_id", role="visits",
            optional_columns=("visit_end_date",),
        ),
        TableSpec(
            "condition_occurrence", ("person_id", "condition_start_date", "condition_source_value"), "person_id",
            optional_columns=("visit_occurrence_id",),
        ),
        TableSpec(
            "procedure_occurrence", ("person_id", "procedure_date", "procedure_source_value"), "person_id",
            optional_columns=("visit_occurrence_id",),
        ),
    )

    def clean(self, table: str, frame: pl.DataFrame, ledger: Ledger) -> pl.DataFrame:
        frame = drop_missing(frame.rename({"person_id": "patient_id"}), ["patient_id"], ledger)
        if table == "person":
            return frame.select(
                "patient_id",
                sex=pl.col("gender_concept_id").replace_strict(GENDER_CONCEPTS, default=None, return_dtype=pl.Utf8),
                birth_year=pl.col("year_of_birth").cast(pl.Int32, strict=False),
                region=pl.lit(None, pl.Utf8),
                *ORIGIN,
            )
        if table == "visit_occurrence":
            frame = parse_dates(frame, "visit_start_date", ledger, self.limits)
            # An end date is optional in the CDM: only one that parses and precedes the start is implausible.
            end = pl.col("visit_end_date").str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
            frame = frame.with_columns(implausible=(end < pl.col("date")).fill_null(False))
            ledger.stop_on(frame, pl.col("implausible"), "discharge_before_admission")
            return frame.select("patient_id", "visit_occurrence_id", "implausible", *ORIGIN)
        if table == "condition_occurrence":
            frame = drop_missing(frame, ["condition_source_value"], ledger)
            frame = parse_dates(frame, "condition_start_date", ledger, self.limits)
            code = pl.col("condition_source_value")
            is_nine = code.str.contains(r"^\d+\.?\d*$") | (pl.col("date") < ICD10_START)
            return frame.select(
                *EVENT_COLUMNS[:2], system=pl.when(is_nine).then(pl.lit(ICD9CM)).otherwise(pl.lit(ICD10CM)),
                code=code, visit_id=pl.col("visit_occurrence_id"), *ORIGIN,
            )
        frame = drop_missing(frame, ["procedure_source_value"], ledger)
        frame = parse_dates(frame, "procedure_date", ledger, self.limits)
        code = pl.col("procedure_source_value").str.to_uppercase()
        system = (
            pl.when(code.str.contains(r"^(\d{4}[0-9A-Z]|[A-Z]\d{4})(-.*)?$")).then(pl.lit(CPT))
            .when(code.str.contains(r"^\d{2}\.?\d{0,2}$")).then(pl.lit(ICD9PCS))
            .when(code.str.contains(r"^[0-9A-Z]{7}$")).then(pl.lit(ICD10PCS))
            .otherwise(pl.lit(None, pl.Utf8))
        )
        frame = ledger.drop_where(frame.with_columns(system=system), pl.col("system").is_null(), "malformed_code")
        return frame.select(*EVENT_COLUMNS[:2], "system", code=code, visit_id=pl.col("visit_occurrence_id"), *ORIGIN)

    def assemble(self, frames: dict[str, pl.DataFrame], ledger: Ledger) -> tuple[pl.DataFrame, pl.DataFrame]:
        visits = frames["visit_occurrence"]
        ledger.drop_frame(visits.filter(pl.col("implausible")), "discharge_before_admission")
        for table, count in visits.filter(~pl.col("implausible")).group_by("_table").len().iter_rows():
            ledger.keep(table, count)
        implausible = visits.filter(pl.col("implausible")).get_column("visit_occurrence_id")
        events = pl.concat([
            without_implausible_visits(frames[name], implausible, ledger).select(*EVENT_COLUMNS, *ORIGIN)
            for name in ("condition_occurrence", "procedure_occurrence")
        ])
        return frames["person"], events
