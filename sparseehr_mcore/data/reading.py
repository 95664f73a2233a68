"""Stream one input table (CSV, gzipped CSV or Parquet) in bounded batches of text columns.

Memory stays flat whatever the file size: pyarrow's streaming CSV reader and Parquet batch
iterator hand over one block at a time. Every column is read as raw bytes first, so non-UTF-8 bytes
become a counted drop (`non_utf8`) instead of a crash, and rows with the wrong number of fields go
to pyarrow's invalid-row handler (`malformed_row`). Column names match case-insensitively (MIMIC-III
ships upper-case headers in the full release and lower-case ones in the demo).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sparseehr_mcore.data.ledger import BadRecordError, Ledger, PreprocessError

CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet",)
BLOCK_BYTES = 16 << 20  # bytes of CSV text per batch
PARQUET_BATCH_ROWS = 1 << 20


def find_table_file(input_dir: Path, stem: str) -> Path | None:
    """The file for table `stem` in `input_dir` (any supported suffix, any case), or None."""
    wanted = {stem.lower() + suffix for suffix in CSV_SUFFIXES + PARQUET_SUFFIXES}
    matches = sorted(p for p in input_dir.iterdir() if p.is_file() and p.name.lower() in wanted)
    return matches[0] if matches else None


def _is_parquet(path: Path) -> bool:
    return path.name.lower().endswith(PARQUET_SUFFIXES)


def table_columns(path: Path) -> list[str]:
    """The column names in a table file's header or schema."""
    try:
        if _is_parquet(path):
            return list(pq.ParquetFile(path).schema_arrow.names)
        # Only the first line: a malformed row further down must be counted, not fail the header.
        with pa.input_stream(str(path), compression="detect") as stream:
            first = stream.read(1 << 16).split(b"\n", 1)[0].rstrip(b"\r")
        return next(csv.reader([first.decode("utf-8")]))
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError, StopIteration) as err:
        raise PreprocessError(f"{path}: cannot read the header: {err}") from None


def resolve_columns(path: Path, wanted: list[str]) -> dict[str, str]:
    """Map each wanted (lower-case) column name to its spelling in the file, or raise naming both."""
    present = table_columns(path)
    by_lower = {name.lower(): name for name in present}
    missing = [name for name in wanted if name.lower() not in by_lower]
    if missing:
        raise PreprocessError(
            f"{path}: missing column(s) {', '.join(missing)}; the file has {', '.join(present)}"
            " (is --source right for this input?)"
        )
    return {name: by_lower[name.lower()] for name in wanted}


def _decode_utf8(batch: pa.RecordBatch) -> tuple[pl.DataFrame, pl.Series | None]:
    """Text columns from binary ones, plus a mask of rows that held invalid UTF-8 (None: no such row)."""
    columns, bad = {}, None
    for name, column in zip(batch.schema.names, batch.columns):
        try:
            columns[name] = pc.cast(column, pa.string())
            continue
        except pa.ArrowInvalid:
            pass
        # Rare path: find the offending rows one by one, keep the rest.
        values = column.to_pylist()
        flags = []
        decoded = []
        for value in values:
            try:
                decoded.append(None if value is None else value.decode("utf-8"))
                flags.append(False)
            except UnicodeDecodeError:
                decoded.append(None)
                flags.append(True)
        columns[name] = pa.array(decoded, pa.string())
        flag_series = pl.Series(flags, dtype=pl.Boolean)
        bad = flag_series if bad is None else (bad | flag_series)
    return pl.from_arrow(pa.table(columns)), bad


def iter_table(
    path: Path, *, table: str, columns: list[str], ledger: Ledger
) -> Iterator[pl.DataFrame]:
    """Yield batches of `columns` (lower-case names, text, stripped) plus `_table` and `_row`.

    Rows that are malformed or not UTF-8 are counted as read and dropped in `ledger` (which raises
    in strict mode). `_row` is the 1-based data row number within the file (header excluded); after
    a skipped malformed row it may be off by the rows skipped in the same batch (strict mode stops
    at the first, so strict locations are exact).
    """
    spelled = resolve_columns(path, columns)
    ledger.files[table] = str(path)
    if _is_parquet(path):
        decoded = _parquet_frames(path, spelled)
    else:
        decoded = _csv_frames(path, table=table, spelled=spelled, ledger=ledger)
    next_row = 1
    for frame, bad, skipped in decoded:
        first = next_row + skipped
        frame = (
            frame.rename({spelled[name]: name for name in columns})
            .select(columns)
            .with_columns([pl.col(name).str.strip_chars().replace("", None) for name in columns])
            .with_columns(_table=pl.lit(table), _row=pl.int_range(first, first + frame.height, dtype=pl.Int64))
        )
        next_row += frame.height
        ledger.read(table, frame.height)
        if bad is not None and bad.any():  # the example names only the row: its other fields may be garbled too
            ledger.drop_frame(frame.filter(bad).select("_table", "_row"), "non_utf8")
            frame = frame.filter(~bad)
        yield frame


def _parquet_frames(path: Path, spelled: dict[str, str]) -> Iterator[tuple[pl.DataFrame, None, int]]:
    """(text frame, no bad mask, 0) per Parquet batch: Parquet strings are UTF-8 by format."""
    for batch in pq.ParquetFile(path).iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=list(spelled.values())):
        yield pl.from_arrow(pa.table(batch)).select(pl.all().cast(pl.Utf8)), None, 0


def _csv_frames(path: Path, *, table: str, spelled: dict[str, str], ledger: Ledger):
    """(text frame, non-UTF-8 mask, malformed rows skipped so far) per CSV block."""
    batches, invalid_seen = _csv_batches(path, table=table, spelled=spelled, ledger=ledger)
    for batch in batches:
        frame, bad = _decode_utf8(batch)
        yield frame, bad, invalid_seen[0]


def _csv_batches(path: Path, *, table: str, spelled: dict[str, str], ledger: Ledger):
    invalid_seen = [0]
    stopped: list[BadRecordError] = []  # pyarrow swallows exceptions raised inside the handler

    def on_invalid_row(row) -> str:
        invalid_seen[0] += 1
        ledger.read(table, 1)
        try:
            ledger.drop_one(
                table,
                "malformed_row",
                row=None if row.number is None else row.number - 1,
                detail=f"expected {row.expected_columns} fields, found {row.actual_columns}: {row.text[:80]!r}",
            )
        except BadRecordError as err:  # strict mode: make pyarrow stop, re-raise below
            stopped.append(err)
            return "error"
        return "skip"

    def fail(err: Exception):
        if stopped:
            raise stopped[0] from None
        raise PreprocessError(f"{path}: cannot parse: {err}") from None

    try:
        reader = pacsv.open_csv(
            str(path),
            # Threads parse blocks in parallel; strict mode reads serially so that the first bad
            # row's number is exact.
            read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES, use_threads=not ledger.strict),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid_row, newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.binary() for name in spelled.values()},
                include_columns=list(spelled.values()),
                strings_can_be_null=True,
                null_values=[""],
                quoted_strings_can_be_null=True,
            ),
        )
    except (pa.ArrowInvalid, OSError) as err:
        fail(err)

    def batches():
        with reader:
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                except pa.ArrowInvalid as err:
                    fail(err)
                yield batch

    return batches(), invalid_seen
