"""MIMIC-III (v1.4): PATIENTS, ADMISSIONS, DIAGNOSES_ICD, PROCEDURES_ICD; ICD-9 only.

Neither diagnoses nor procedures carry a date in MIMIC-III, so both are dated by their admission
(`diagnosis_date`, discharge by default, as for MIMIC-IV). Birth year comes from `dob`; MIMIC-III
moves the birth date of patients older than 89 about 300 years back, so those dates are accepted
(`BIRTH_YEAR_SLACK`) and land in the '90+' age bucket.
"""

from __future__ import annotations

import polars as pl

from sparseehr_mcore.data.ledger import Ledger
from sparseehr_mcore.data.sources.base import (
    EVENT_COLUMNS,
    MAX_AGE,
    ORIGIN,
    DateLimits,
    SourceReader,
    TableSpec,
    drop_missing,
    parse_dates,
)
from sparseehr_mcore.data.sources.mimic_iv import admissions_visits, clean_admissions, dated_by_visit
from sparseehr_mcore.data.timeline import ICD9CM, ICD9PCS

BIRTH_YEAR_SLACK = 350
SHIFTED_AGE = 300  # the age MIMIC-III gives a patient over 89 at the first admission
HIPAA_AGE = 89


class MimicIIIReader(SourceReader):
    """MIMIC-III (v1.4) tables; upper- or lower-case file and column names."""

    name = "mimic-iii"
    visits = "admissions (hadm_id)"
    # Real ages 89..MAX_AGE read as 300 at the first admission, a few years more at later ones.
    shifted_ages = (SHIFTED_AGE, SHIFTED_AGE + MAX_AGE - HIPAA_AGE)
    tables = (
        TableSpec("PATIENTS", ("subject_id", "gender", "dob"), "subject_id", role="patients"),
        TableSpec("ADMISSIONS", ("subject_id", "hadm_id", "admittime", "dischtime"), "subject_id", role="visits"),
        TableSpec("DIAGNOSES_ICD", ("subject_id", "hadm_id", "icd9_code"), "subject_id"),
        TableSpec("PROCEDURES_ICD", ("subject_id", "hadm_id", "icd9_code"), "subject_id"),
    )

    def __init__(self, *, diagnosis_date: str = "discharge", **common) -> None:
        super().__init__(**common)
        self.diagnosis_date = diagnosis_date

    def clean(self, table: str, frame: pl.DataFrame, ledger: Ledger) -> pl.DataFrame:
        frame = drop_missing(frame.rename({"subject_id": "patient_id"}), ["patient_id"], ledger)
        if table == "PATIENTS":
            birth_limits = DateLimits(self.limits.min_year - BIRTH_YEAR_SLACK, self.limits.max_year)
            frame = parse_dates(frame, "dob", ledger, birth_limits, output="birth_date")
            return frame.select(
                "patient_id", sex=pl.col("gender"), birth_year=pl.col("birth_date").dt.year().cast(pl.Int32),
                region=pl.lit(None, pl.Utf8), *ORIGIN,
            )
        if table == "ADMISSIONS":
            return clean_admissions(frame, ledger, self.limits)
        frame = drop_missing(frame, ["hadm_id", "icd9_code"], ledger)
        system = ICD9CM if table == "DIAGNOSES_ICD" else ICD9PCS
        return frame.select("patient_id", "hadm_id", system=pl.lit(system), code=pl.col("icd9_code"), *ORIGIN)

    def assemble(self, frames: dict[str, pl.DataFrame], ledger: Ledger) -> tuple[pl.DataFrame, pl.DataFrame]:
        visits = admissions_visits(frames["ADMISSIONS"], ledger, diagnosis_date=self.diagnosis_date)
        events = pl.concat(
            [
                dated_by_visit(frames[name], visits, ledger).select(*EVENT_COLUMNS, *ORIGIN)
                for name in ("DIAGNOSES_ICD", "PROCEDURES_ICD")
            ]
        )
        return frames["PATIENTS"], events
