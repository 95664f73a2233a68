"""Accounting of every input row: read, kept, or dropped with a named reason.

Every table of every source is counted here, so a manifest can prove `read == kept + dropped` per
table. In strict mode the first dropped row raises `BadRecordError` with its file and row instead.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import polars as pl


class PreprocessError(RuntimeError):
    """Input or flags the pipeline cannot work with; the message says what to change."""


class BadRecordError(PreprocessError):
    """A bad input record met in `--strict` mode: the message names its file and row."""


# Reasons a row is dropped; the manifest keys. Documented in docs/data.md.
DROP_REASONS = {
    "malformed_row": "wrong number of fields for the header",
    "non_utf8": "bytes that are not valid UTF-8",
    "missing_value": "a required field (id, date or code) is empty",
    "bad_date": "a date that does not parse",
    "impossible_date": "a date outside the configured year range",
    "unknown_code_system": "a code system the pipeline does not know",
    "malformed_code": "a code that does not have the form of its code system",
    "unmapped_code": "no GEM entry and no category fallback",
    "duplicate_row": "the same patient, day, code system and code already read",
    "unknown_patient": "an event for a patient absent from the patient table",
    "unknown_visit": "a diagnosis whose admission/visit is absent or has no date",
    "discharge_before_admission": "an admission discharged on a day before it began, and every diagnosis or "
    "procedure row of that admission",
    "impossible_age": "a patient whose age at the first kept event is negative or above --max-age, and every "
    "kept row of that patient",
    "no_events": "a patient with no kept events",
}

EXAMPLES_PER_REASON = 3


@dataclass
class TableCount:
    """Rows of one input table: how many were read, kept, and dropped by reason."""

    read: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict:
        return {"read": self.read, "kept": self.kept, "dropped": dict(sorted(self.dropped.items()))}


class Ledger:
    """Counts rows per table and reason; raises on the first drop when strict.

    Args:
        files: table name to the file it was read from (for locations in messages).
        strict: raise `BadRecordError` at the first dropped row instead of counting it.
    """

    def __init__(self, *, files: dict[str, str] | None = None, strict: bool = False) -> None:
        self.files = dict(files or {})
        self.strict = strict
        self.tables: dict[str, TableCount] = defaultdict(TableCount)
        self.examples: dict[str, list[str]] = defaultdict(list)

    def location(self, table: str, row: int | None) -> str:
        where = self.files.get(table, table)
        return f"{where}: data row {row}" if row is not None else where

    def read(self, table: str, rows: int) -> None:
        self.tables[table].read += rows

    def keep(self, table: str, rows: int) -> None:
        self.tables[table].kept += rows

    def drop_one(self, table: str, reason: str, *, row: int | None, detail: str) -> None:
        """Count one dropped row (or raise in strict mode)."""
        if reason not in DROP_REASONS:
            raise ValueError(f"unknown drop reason {reason!r}")
        explained = f"{reason} ({DROP_REASONS[reason]}): {detail}"
        if self.strict:
            raise BadRecordError(f"{self.location(table, row)}: {explained}")
        self.tables[table].dropped[reason] += 1
        if len(self.examples[reason]) < EXAMPLES_PER_REASON:
            # Table name, not path: the manifest must not depend on where the input lives.
            where = f"{table}: data row {row}" if row is not None else table
            self.examples[reason].append(f"{where}: {explained}")

    def drop_frame(self, frame: pl.DataFrame, reason: str, *, detail_column: str | None = None) -> None:
        """Count the rows of `frame` (columns `_table`, `_row`) as dropped for `reason`."""
        if frame.height == 0:
            return
        if reason not in DROP_REASONS:
            raise ValueError(f"unknown drop reason {reason!r}")
        frame = frame.sort("_table", "_row")
        if self.strict or len(self.examples[reason]) < EXAMPLES_PER_REASON:
            for record in frame.head(EXAMPLES_PER_REASON).iter_rows(named=True):
                detail = str(record[detail_column]) if detail_column else "; ".join(
                    f"{k}={v}" for k, v in record.items() if not k.startswith("_")
                )
                self.drop_one(record["_table"], reason, row=record["_row"], detail=detail)
            already = min(frame.height, EXAMPLES_PER_REASON)
        else:
            already = 0
        rest = frame.slice(already)
        for (table,), group in rest.group_by(["_table"], maintain_order=True):
            self.tables[table].dropped[reason] += group.height

    def drop_where(self, frame: pl.DataFrame, condition: pl.Expr | pl.Series, reason: str) -> pl.DataFrame:
        """`frame` without the rows where `condition` holds, those counted as dropped for `reason`.

        Clean input is the common case: when no row matches, `frame` comes back as it is, without
        the two filtered copies a split would cost.
        """
        bad = condition if isinstance(condition, pl.Series) else frame.select(condition).to_series()
        bad = bad.fill_null(False)
        if not bad.any():
            return frame
        self.drop_frame(frame.filter(bad), reason)
        return frame.filter(~bad)

    def stop_on(self, frame: pl.DataFrame, condition: pl.Expr, reason: str) -> None:
        """In strict mode, raise at the first row of `frame` where `condition` holds; otherwise nothing.

        For rows that are dropped later together with the rows that depend on them (an implausible
        admission and its diagnoses), while strict mode must still stop in file order.
        """
        if self.strict:
            self.drop_where(frame, condition, reason)

    def merge(self, other: "Ledger") -> None:
        """Add another ledger's counts (from another bucket or worker)."""
        for table, count in other.tables.items():
            mine = self.tables[table]
            mine.read += count.read
            mine.kept += count.kept
            mine.dropped.update(count.dropped)
        for reason, examples in other.examples.items():
            room = EXAMPLES_PER_REASON - len(self.examples[reason])
            self.examples[reason].extend(examples[: max(room, 0)])
        self.files.update(other.files)

    def to_dict(self) -> dict:
        return {
            "tables": {name: self.tables[name].to_dict() for name in sorted(self.tables)},
            "examples": {reason: self.examples[reason] for reason in sorted(self.examples)},
        }

    @classmethod
    def from_dict(cls, values: dict) -> "Ledger":
        ledger = cls()
        for name, count in values["tables"].items():
            ledger.tables[name] = TableCount(count["read"], count["kept"], Counter(count["dropped"]))
        for reason, examples in values["examples"].items():
            ledger.examples[reason] = list(examples)
        return ledger

    def empty_tables(self) -> list[str]:
        """The tables that were read and held no data row (a header alone), sorted."""
        return sorted(name for name, count in self.tables.items() if count.read == 0)

    def check_balanced(self) -> None:
        """Raise if any table's read count differs from kept + dropped (a pipeline bug)."""
        for name, count in self.tables.items():
            if count.read != count.kept + sum(count.dropped.values()):
                raise PreprocessError(
                    f"internal accounting error in table {name}: read {count.read} != kept {count.kept}"
                    f" + dropped {sum(count.dropped.values())} {dict(count.dropped)}"
                )
