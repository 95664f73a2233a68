"""What every source reader declares and provides, and the row checks they share.

A reader names its tables (`TableSpec`), cleans each streamed batch of a table (types, dates, code
systems; bad rows dropped with a reason), and assembles the cleaned tables of one patient bucket
into the two common frames:

* patients: `patient_id` (str), `sex` (str|null), `birth_year` (int|null), `region` (str|null)
* events: `patient_id` (str), `date` (date), `system` (str, see `timeline.SOURCE_SYSTEMS`), `code`,
  `visit_id` (str|null: the admission or encounter the event belongs to, where the source says;
  see `SourceReader.visits`)

Both carry `_table` and `_row` so any later drop is counted against the row it came from.
"""

from __future__ import annotations

import datetime
from abc import ABC, abstractmethod
from dataclasses import dataclass

import polars as pl

from sparseehr_mcore.data.ledger import Ledger
from sparseehr_mcore.data.timeline import CPT, ICD9CM, ICD9PCS, ICD10CM, ICD10PCS

PATIENT_COLUMNS = ("patient_id", "sex", "birth_year", "region")
EVENT_COLUMNS = ("patient_id", "date", "system", "code", "visit_id")
ORIGIN = ("_table", "_row")

# Spellings of code systems seen in the wild, mapped to ours (`_system_key`: upper-cased, '-', '_', ' ', '.' removed).
SYSTEM_ALIASES = {
    "ICD9": ICD9CM, "ICD9CM": ICD9CM, "ICD9DX": ICD9CM,
    "ICD10": ICD10CM, "ICD10CM": ICD10CM, "ICD10DX": ICD10CM,
    "ICD9PCS": ICD9PCS, "ICD9PROC": ICD9PCS, "ICD9CMPROC": ICD9PCS, "ICD9PX": ICD9PCS,
    "ICD10PCS": ICD10PCS, "ICD10PROC": ICD10PCS, "ICD10PX": ICD10PCS,
    "CPT": CPT, "CPT4": CPT, "HCPCS": CPT, "CPTHCPCS": CPT,
}


@dataclass(frozen=True)
class TableSpec:
    """One input table of a source schema.

    Attributes:
        name: the table's file stem (matched case-insensitively, `.csv`, `.csv.gz` or `.parquet`)
            and its name in the manifest.
        columns: the columns read (lower-case); a file lacking one is rejected with both lists.
        optional_columns: columns read where the file has them, all-null where it has not.
        patient_column: the column holding the patient id, used to bucket rows by patient.
        role: which total of the manifest (patients, visits, events) the table's rows count in.
    """

    name: str
    columns: tuple[str, ...]
    patient_column: str
    role: str = "events"  # "patients", "visits" or "events": how the manifest totals its rows
    optional_columns: tuple[str, ...] = ()

    @property
    def all_columns(self) -> tuple[str, ...]:
        return self.columns + self.optional_columns


@dataclass(frozen=True)
class TableLayout:
    """Where a source's tables may live under `--input`, so a release folder works as downloaded.

    Attributes:
        folders: folders relative to `--input` ("" is `--input` itself), tried in order: the first
            that holds every required table is read (MIMIC-IV ships its tables under `hosp/`).
        shards: for a source whose one table is many files (MEDS), a glob under the first folder
            that matches any file; each file is then a table of its own in the ledger.
    """

    folders: tuple[str, ...] = ("",)
    shards: str | None = None


MAX_AGE = 120  # years at the first kept event; the oldest verified human lived to 122


@dataclass(frozen=True)
class AgeLimits:
    """Plausible ages (whole years from birth year to the year of the first kept event).

    Attributes:
        max_age: older is `impossible_age`, as is any negative age (a birth year after the events).
        shifted: an age range (inclusive) that a source's de-identification moves real ages into;
            ages there are plausible (MIMIC-III sets the birth date of patients over 89 to 300
            years before their first admission).
    """

    max_age: int = MAX_AGE
    shifted: tuple[int, int] | None = None

    def implausible(self, age: pl.Expr) -> pl.Expr:
        outside = (age < 0) | (age > self.max_age)
        if self.shifted is not None:
            outside = outside & ~age.is_between(*self.shifted)
        return outside


@dataclass(frozen=True)
class DateLimits:
    """Dates outside [min_year, max_year] are impossible (MIMIC shifts dates into 2100-2210)."""

    min_year: int = 1850
    max_year: int = 2250


class SourceReader(ABC):
    """A source schema: its tables, per-batch cleaning and per-bucket assembly."""

    name: str = ""
    tables: tuple[TableSpec, ...] = ()
    optional_tables: tuple[str, ...] = ()
    layout: TableLayout = TableLayout()
    # Where events get their `visit_id` (written to the manifest): visits are what next-visit
    # evaluation scores; a day bundle without any event of an earlier-begun visit opens a new one.
    visits: str = "none: every day bundle is a visit of its own"
    shifted_ages: tuple[int, int] | None = None  # see `AgeLimits.shifted`

    def __init__(self, *, limits: DateLimits, extra_code_systems: tuple[str, ...] = (), max_age: int = MAX_AGE) -> None:
        self.limits = limits
        self.extra_code_systems = tuple(s.upper() for s in extra_code_systems)
        self.ages = AgeLimits(max_age=max_age, shifted=self.shifted_ages)

    @abstractmethod
    def clean(self, table: str, frame: pl.DataFrame, ledger: Ledger) -> pl.DataFrame:
        """Type one streamed batch of `table`, dropping bad rows; must keep `patient_id` + origin."""

    @abstractmethod
    def assemble(self, frames: dict[str, pl.DataFrame], ledger: Ledger) -> tuple[pl.DataFrame, pl.DataFrame]:
        """The (patients, events) frames of one bucket from its cleaned tables."""


def drop_missing(frame: pl.DataFrame, columns: list[str], ledger: Ledger) -> pl.DataFrame:
    """Drop (as `missing_value`) rows where any of `columns` is null."""
    return ledger.drop_where(frame, pl.any_horizontal([pl.col(c).is_null() for c in columns]), "missing_value")


def parse_dates(
    frame: pl.DataFrame, column: str, ledger: Ledger, limits: DateLimits, *, output: str = "date"
) -> pl.DataFrame:
    """Parse `column` (a date, or a datetime whose first 10 characters are the date) into `output`.

    Rows with an empty value are `missing_value`, unparseable ones `bad_date`, dates outside the
    year limits `impossible_date`.
    """
    frame = drop_missing(frame, [column], ledger)
    frame = frame.with_columns(
        # No cache: parsing each value again is cheaper than hashing it (dates repeat little in a batch).
        pl.col(column).str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False, cache=False).alias(output)
    )
    frame = ledger.drop_where(frame, pl.col(output).is_null(), "bad_date")
    inside = pl.col(output).is_between(datetime.date(limits.min_year, 1, 1), datetime.date(limits.max_year, 12, 31))
    return ledger.drop_where(frame, ~inside, "impossible_date")


def _system_key(spelling: str) -> str:
    """A code-system spelling upper-cased without '-', '_', ' ' and '.' (the `SYSTEM_ALIASES` key)."""
    return spelling.upper().translate(str.maketrans("", "", "-_ ."))


def normalise_systems(
    frame: pl.DataFrame, column: str, ledger: Ledger, *, extra: tuple[str, ...] = ()
) -> pl.DataFrame:
    """Map code-system spellings to ours; unknown systems are dropped as `unknown_code_system`.

    Systems listed in `extra` pass through unchanged (upper-cased), for sources with more than
    diagnoses and procedures.
    """
    aliases = dict(SYSTEM_ALIASES)
    aliases.update({_system_key(s): s for s in extra})
    # A column holds a handful of spellings: resolve each once, then replace them all.
    spellings = frame.get_column(column).unique().drop_nulls().to_list()
    resolved = {spelling: aliases.get(_system_key(spelling)) for spelling in spellings}
    if all(spelling == system for spelling, system in resolved.items()):  # spelled our way already
        system = pl.col(column)
    else:
        system = pl.col(column).replace_strict(resolved, default=None, return_dtype=pl.Utf8)
    frame = frame.with_columns(system=system)
    return ledger.drop_where(frame, pl.col("system").is_null(), "unknown_code_system")


def empty_patients() -> pl.DataFrame:
    return pl.DataFrame(
        schema={"patient_id": pl.Utf8, "sex": pl.Utf8, "birth_year": pl.Int32, "region": pl.Utf8,
                "_table": pl.Utf8, "_row": pl.Int64}
    )


def without_implausible_visits(frame: pl.DataFrame, implausible: pl.Series, ledger: Ledger) -> pl.DataFrame:
    """`frame` (rows with a `visit_id`) less the rows of the `implausible` visits (ids; stays that
    end before they begin), counted as `discharge_before_admission`."""
    if implausible.is_empty():
        return frame
    return ledger.drop_where(frame, pl.col("visit_id").is_in(implausible.implode()), "discharge_before_admission")
