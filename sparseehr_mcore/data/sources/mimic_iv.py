"""MIMIC-IV hosp module: patients, admissions, diagnoses_icd, procedures_icd, hcpcsevents.

Codes are ICD-9 or ICD-10 by `icd_version`. Diagnoses have no date of their own: each is dated by
its admission (`hadm_id`) on the day chosen by `diagnosis_date` (default: discharge, because
diagnoses are coded from the discharge summary and are only known once the stay ends; dating them
at admission would put them before the procedures of the same stay that led to them). Procedures
(`chartdate`) and HCPCS events (`chartdate`) keep their own day. Birth year is
`anchor_year - anchor_age` (MIMIC-IV's shifted anchor).
"""

from __future__ import annotations

import polars as pl

from sparseehr_mcore.data.ledger import Ledger
from sparseehr_mcore.data.sources.base import (
    EVENT_COLUMNS,
    ORIGIN,
    DateLimits,
    SourceReader,
    TableLayout,
    TableSpec,
    drop_missing,
    parse_dates,
    without_implausible_visits,
)
from sparseehr_mcore.data.timeline import CPT, ICD9CM, ICD9PCS, ICD10CM, ICD10PCS

DIAGNOSIS_DATES = ("discharge", "admission")


def icd_system(frame: pl.DataFrame, ledger: Ledger, *, nine: str, ten: str) -> pl.DataFrame:
    """Code system from `icd_version` ('9' or '10'); other versions are `unknown_code_system`."""
    frame = drop_missing(frame, ["icd_version"], ledger)
    frame = frame.with_columns(
        system=pl.col("icd_version").replace_strict({"9": nine, "10": ten}, default=None, return_dtype=pl.Utf8)
    )
    return ledger.drop_where(frame, pl.col("system").is_null(), "unknown_code_system")


def clean_admissions(frame: pl.DataFrame, ledger: Ledger, limits: DateLimits) -> pl.DataFrame:
    """Admission and discharge days of each admission, and whether the stay is `implausible`.

    A discharge on a day before the admission's is implausible: the admission and every row that
    points at it are dropped in `admissions_visits` and `dated_by_visit` (their dependants are in
    other tables); strict mode stops here, at the first such row in file order. Days, not times, are
    compared: a discharge hours before the admission on the same day changes no date of the timeline.
    """
    frame = drop_missing(frame, ["hadm_id"], ledger)
    frame = parse_dates(frame, "admittime", ledger, limits, output="admit_date")
    frame = parse_dates(frame, "dischtime", ledger, limits, output="discharge_date")
    frame = frame.with_columns(implausible=pl.col("discharge_date") < pl.col("admit_date"))
    ledger.stop_on(frame, pl.col("implausible"), "discharge_before_admission")
    return frame.select("patient_id", "hadm_id", "admit_date", "discharge_date", "implausible", *ORIGIN)


def admissions_visits(frame: pl.DataFrame, ledger: Ledger, *, diagnosis_date: str) -> pl.DataFrame:
    """One row per hadm_id: the day its diagnoses are dated (`visit_date`, null for an implausible
    stay, which is dropped here as `discharge_before_admission`) and `implausible`."""
    frame = frame.sort("_table", "_row")
    first = frame.select(pl.col("hadm_id").is_first_distinct()).to_series()
    ledger.drop_frame(frame.filter(~first), "duplicate_row")
    frame = frame.filter(first)
    ledger.drop_frame(frame.filter(pl.col("implausible")), "discharge_before_admission")
    for table in frame.get_column("_table").unique().to_list():
        ledger.keep(table, frame.filter((pl.col("_table") == table) & ~pl.col("implausible")).height)
    column = "discharge_date" if diagnosis_date == "discharge" else "admit_date"
    return frame.select(
        "hadm_id", pl.when(~pl.col("implausible")).then(pl.col(column)).alias("visit_date"), "implausible"
    )


def dated_by_visit(frame: pl.DataFrame, visits: pl.DataFrame, ledger: Ledger) -> pl.DataFrame:
    """Give each row its admission's day and id; rows of an implausible admission are
    `discharge_before_admission`, rows whose admission is absent `unknown_visit`."""
    joined = frame.join(visits, on="hadm_id", how="left")
    joined = ledger.drop_where(joined, pl.col("implausible"), "discharge_before_admission")
    joined = ledger.drop_where(joined, pl.col("visit_date").is_null(), "unknown_visit")
    return joined.drop("implausible").rename({"visit_date": "date"}).with_columns(visit_id=pl.col("hadm_id"))


class MimicIVReader(SourceReader):
    """MIMIC-IV (v2.x) hosp tables."""

    name = "mimic-iv"
    visits = "admissions (hadm_id)"
    layout = TableLayout(folders=("", "hosp"))  # the hosp/ folder, or the release root above it
    tables = (
        TableSpec("patients", ("subject_id", "gender", "anchor_age", "anchor_year"), "subject_id", role="patients"),
        TableSpec("admissions", ("subject_id", "hadm_id", "admittime", "dischtime"), "subject_id", role="visits"),
        TableSpec("diagnoses_icd", ("subject_id", "hadm_id", "icd_code", "icd_version"), "subject_id"),
        TableSpec(
            "procedures_icd", ("subject_id", "hadm_id", "chartdate", "icd_code", "icd_version"), "subject_id"
        ),
        TableSpec("hcpcsevents", ("subject_id", "hadm_id", "chartdate", "hcpcs_cd"), "subject_id"),
    )

    def __init__(self, *, diagnosis_date: str = "discharge", **common) -> None:
        super().__init__(**common)
        self.diagnosis_date = diagnosis_date

    def clean(self, table: str, frame: pl.DataFrame, ledger: Ledger) -> pl.DataFrame:
        frame = drop_missing(frame.rename({"subject_id": "patient_id"}), ["patient_id"], ledger)
        if table == "patients":
            birth = pl.col("anchor_year").cast(pl.Int32, strict=False) - pl.col("anchor_age").cast(pl.Int32, strict=False)
            return frame.select("patient_id", sex=pl.col("gender"), birth_year=birth, region=pl.lit(None, pl.Utf8), *ORIGIN)
        if table == "admissions":
            return clean_admissions(frame, ledger, self.limits)
        if table == "diagnoses_icd":
            frame = drop_missing(frame, ["hadm_id", "icd_code"], ledger)
            frame = icd_system(frame, ledger, nine=ICD9CM, ten=ICD10CM)
            return frame.select("patient_id", "hadm_id", "system", code=pl.col("icd_code"), *ORIGIN)
        if table == "procedures_icd":
            frame = drop_missing(frame, ["icd_code"], ledger)
            frame = icd_system(frame, ledger, nine=ICD9PCS, ten=ICD10PCS)
            frame = parse_dates(frame, "chartdate", ledger, self.limits)
            return frame.select(*EVENT_COLUMNS[:2], "system", code=pl.col("icd_code"), visit_id=pl.col("hadm_id"), *ORIGIN)
        # hcpcsevents
        frame = drop_missing(frame, ["hcpcs_cd"], ledger)
        frame = parse_dates(frame, "chartdate", ledger, self.limits)
        return frame.select(
            "patient_id", "date", system=pl.lit(CPT), code=pl.col("hcpcs_cd"), visit_id=pl.col("hadm_id"), *ORIGIN
        )

    def assemble(self, frames: dict[str, pl.DataFrame], ledger: Ledger) -> tuple[pl.DataFrame, pl.DataFrame]:
        visits = admissions_visits(frames["admissions"], ledger, diagnosis_date=self.diagnosis_date)
        diagnoses = dated_by_visit(frames["diagnoses_icd"], visits, ledger)
        implausible = visits.filter(pl.col("implausible")).get_column("hadm_id")
        events = pl.concat([
            diagnoses.select(*EVENT_COLUMNS, *ORIGIN),
            *(without_implausible_visits(frames[name], implausible, ledger).select(*EVENT_COLUMNS, *ORIGIN)
              for name in ("procedures_icd", "hcpcsevents")),
        ])
        return frames["patients"], events
