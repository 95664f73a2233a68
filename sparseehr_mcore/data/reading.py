"""Stream one input table (CSV, gzipped CSV or Parquet) in bounded batches of text columns.

Memory stays flat whatever the file size: pyarrow's streaming CSV reader and Parquet batch
iterator hand over one block at a time. Every column is read as raw bytes first, so non-UTF-8 bytes
become a counted drop (`non_utf8`) instead of a crash, and rows with the wrong number of fields go
to pyarrow's invalid-row handler (`malformed_row`). Column names match case-insensitively (MIMIC-III
ships upper-case headers in the full release and lower-case ones in the demo).
"""

from __future__ import annotations

import bisect
import csv
import mmap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

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


def _parquet():
    """pyarrow.parquet, imported on first use: it imports ssl, 50 ms in every process of a run,
    and most inputs are CSV."""
    import pyarrow.parquet

    return pyarrow.parquet


def _is_parquet(path: Path) -> bool:
    return path.name.lower().endswith(PARQUET_SUFFIXES)


def _compression(path: Path) -> str | None:
    """gzip for `.gz` in any case: pyarrow's own detection knows only the lower-case suffix, and
    tables are matched in any case (`PERSON.CSV.GZ`)."""
    return "gzip" if path.name.lower().endswith(".gz") else None


def table_columns(path: Path) -> list[str]:
    """The column names in a table file's header or schema."""
    try:
        if _is_parquet(path):
            return list(_parquet().ParquetFile(path).schema_arrow.names)
        # Only the first line: a malformed row further down must be counted, not fail the header.
        with pa.input_stream(str(path), compression=_compression(path)) as stream:
            first = stream.read(1 << 16).split(b"\n", 1)[0].rstrip(b"\r")
        return next(csv.reader([first.decode("utf-8")]))
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError, StopIteration) as err:
        raise PreprocessError(f"{path}: cannot read the header: {err}") from None


def resolve_columns(path: Path, wanted: list[str], optional: tuple[str, ...] = ()) -> dict[str, str]:
    """Map each wanted (lower-case) column name to its spelling in the file, or raise naming both.

    `optional` columns are mapped when the file has them and left out otherwise.
    """
    present = table_columns(path)
    by_lower = {name.lower(): name for name in present}
    missing = [name for name in wanted if name.lower() not in by_lower]
    if missing:
        raise PreprocessError(
            f"{path}: missing column(s) {', '.join(missing)}; the file has {', '.join(present)}"
            " (is --source right for this input?)"
        )
    found = [name for name in optional if name.lower() in by_lower and name not in wanted]
    return {name: by_lower[name.lower()] for name in [*wanted, *found]}


# First or last bytes that may begin or end a value `str.strip_chars` changes: ASCII whitespace
# (Unicode White_Space below 0x80) and any non-ASCII byte (other White_Space characters are).
_MAY_STRIP = np.zeros(256, dtype=bool)
_MAY_STRIP[[9, 10, 11, 12, 13, 32]] = True
_MAY_STRIP[0x80:] = True


def _needs_strip(array: pa.StringArray) -> bool:
    """Whether stripping could change a value of `array` or leave one empty; False lets a batch
    skip `strip_chars` for the column (most values have no surrounding space)."""
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[array.offset : array.offset + len(array) + 1]
    starts, ends = offsets[:-1], offsets[1:]
    filled = ends > starts
    if data_buffer is None or not filled.any():
        return bool(array.null_count < len(array))  # only empty strings (or nulls): let the strip decide
    if (~filled).sum() > array.null_count:  # an empty, non-null string: it must become null
        return True
    data = np.frombuffer(data_buffer, dtype=np.uint8)
    return bool(_MAY_STRIP[data[starts[filled]]].any() or _MAY_STRIP[data[ends[filled] - 1]].any())


def _decode_utf8(batch: pa.RecordBatch) -> tuple[pl.DataFrame, pl.Series | None, set[str]]:
    """Text columns from binary ones, a mask of rows that held invalid UTF-8 (None: no such row),
    and the columns that need no stripping."""
    columns, bad, plain = {}, None, set()
    for name, column in zip(batch.schema.names, batch.columns):
        try:
            columns[name] = pc.cast(column, pa.string())
            if not _needs_strip(columns[name]):
                plain.add(name)
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
    return pl.from_arrow(pa.table(columns)), bad, plain


@dataclass(frozen=True)
class FilePart:
    """The rows of a table file one stage task reads: the whole file, or a byte range of an
    uncompressed CSV (whole lines, after the header) starting at data row `first_row`."""

    start: int = 0
    end: int | None = None  # None: the whole file, header included
    first_row: int = 1


def split_file(path: Path, part_bytes: int) -> list[FilePart]:
    """Cut an uncompressed CSV larger than `part_bytes` into parts of about that size, at line ends.

    Each part knows the number of its first data row, counted as the CSV reader counts rows (empty
    lines are not rows), so row numbers, and with them every output byte, are the same however the
    file is cut. Compressed and Parquet files, and small ones, stay whole.
    """
    if not path.name.lower().endswith(".csv") or path.stat().st_size <= part_bytes:
        return [FilePart()]
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        cuts = [data.find(b"\n") + 1]  # the first data row follows the header line
        while cuts[-1] and cuts[-1] + part_bytes < len(data):
            line_end = data.find(b"\n", cuts[-1] + part_bytes)
            if line_end < 0 or line_end + 1 >= len(data):
                break
            cuts.append(line_end + 1)
        if len(cuts) == 1:
            return [FilePart()]
        cuts.append(len(data))
        parts, first_row = [], 1
        for start, end in zip(cuts, cuts[1:]):
            parts.append(FilePart(start, end, first_row))
            if end < len(data):  # the rows of the last part number nothing after them
                first_row += _count_rows(data, start, end)
    return parts


def _count_rows(data: mmap.mmap, start: int, end: int) -> int:
    """Rows in `data[start:end]` (whole lines): lines that are neither empty nor a lone '\\r'."""
    chunk = np.frombuffer(data, dtype=np.uint8, count=end - start, offset=start)
    try:
        line_ends = np.flatnonzero(chunk == ord("\n"))
        line_starts = np.concatenate(([0], line_ends[:-1] + 1))
        widths = line_ends - line_starts
        empty = (widths == 0) | ((widths == 1) & (chunk[line_starts] == ord("\r")))
        return int(len(line_ends) - empty.sum())
    finally:
        del chunk  # the map cannot close while a view of it is alive


def iter_table(
    path: Path, *, table: str, columns: list[str], ledger: Ledger, part: FilePart = FilePart(),
    optional: tuple[str, ...] = (),
) -> Iterator[pl.DataFrame]:
    """Yield batches of `columns` (lower-case names, text, stripped) plus `_table` and `_row`.

    `optional` columns are read where the file has them and are all-null where it has not, so a
    batch always has every column of `columns` and `optional`.

    Rows that are malformed or not UTF-8 are counted as read and dropped in `ledger` (which raises
    in strict mode). `_row` is the 1-based data row number within the file (header and empty lines
    excluded, malformed rows included), exact whichever part is read. `part` limits the read to one
    `split_file` part.
    """
    spelled = resolve_columns(path, columns, optional)
    absent = [name for name in optional if name not in spelled]
    columns = list(spelled)
    ledger.files[table] = str(path)
    ledger.read(table, 0)  # a table with a header and no rows is still counted: as empty
    if _is_parquet(path):
        decoded = _parquet_frames(path, spelled)
    else:
        decoded = _csv_frames(path, table=table, spelled=spelled, ledger=ledger, part=part)
    next_row = part.first_row
    for frame, bad, malformed, plain in decoded:
        rows = _row_numbers(next_row, frame.height, malformed)
        frame = (
            frame.rename({spelled[name]: name for name in columns})
            .select(columns)
            .with_columns([pl.col(name).str.strip_chars().replace("", None) for name in columns
                           if spelled[name] not in plain])
            .with_columns(*[pl.lit(None, pl.Utf8).alias(name) for name in absent])
            .with_columns(_table=pl.lit(table), _row=pl.Series(rows, dtype=pl.Int64))
        )
        next_row = int(rows[-1]) + 1 if len(rows) else next_row
        ledger.read(table, frame.height)
        if bad is not None and bad.any():  # the example names only the row: its other fields may be garbled too
            ledger.drop_frame(frame.filter(bad).select("_table", "_row"), "non_utf8")
            frame = frame.filter(~bad)
        yield frame


def _row_numbers(first: int, count: int, malformed: list[int]) -> np.ndarray:
    """The row numbers of `count` parsed rows from row `first` on, skipping the `malformed` ones
    (which the parser drops from its batches)."""
    # `malformed` is in file order and grows for the whole read: look only past `first`.
    skipped = np.array(malformed[bisect.bisect_left(malformed, first):], dtype=np.int64)
    if not len(skipped):
        return np.arange(first, first + count, dtype=np.int64)
    candidates = np.arange(first, first + count + len(skipped), dtype=np.int64)
    return candidates[~np.isin(candidates, skipped)][:count]


def _parquet_frames(path: Path, spelled: dict[str, str]) -> Iterator[tuple[pl.DataFrame, None, list[int], set[str]]]:
    """(text frame, no bad mask, no malformed rows, no column known plain) per Parquet batch:
    Parquet strings are UTF-8 by format."""
    for batch in _parquet().ParquetFile(path).iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=list(spelled.values())):
        yield pl.from_arrow(pa.table(batch)).select(pl.all().cast(pl.Utf8)), None, [], set()


def _csv_frames(path: Path, *, table: str, spelled: dict[str, str], ledger: Ledger, part: FilePart):
    """(text frame, non-UTF-8 mask, row numbers of the malformed rows met so far, columns that need
    no stripping) per CSV block."""
    batches, malformed = _csv_batches(path, table=table, spelled=spelled, ledger=ledger, part=part)
    for batch in batches:
        frame, bad, plain = _decode_utf8(batch)
        yield frame, bad, malformed, plain


def _csv_source(path: Path, part: FilePart) -> tuple[pa.NativeFile, list[str] | None]:
    """What pyarrow reads for `part`, and the column names when the range has no header line."""
    if part.end is None:
        return pa.input_stream(str(path), compression=_compression(path)), None
    with pa.memory_map(str(path)) as mapped:  # the buffer keeps its pages mapped after the file closes
        return pa.BufferReader(mapped.read_at(part.end - part.start, part.start)), table_columns(path)


def _csv_batches(path: Path, *, table: str, spelled: dict[str, str], ledger: Ledger, part: FilePart):
    malformed: list[int] = []  # data row numbers, in file order
    stopped: list[BadRecordError] = []  # pyarrow swallows exceptions raised inside the handler
    # pyarrow numbers rows from 1, counting the header line when the read starts at one.
    first_number = 1 if part.end is not None else 2

    def on_invalid_row(row) -> str:
        malformed.append(part.first_row + row.number - first_number)
        ledger.read(table, 1)
        try:
            ledger.drop_one(
                table,
                "malformed_row",
                row=malformed[-1],
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
        source, column_names = _csv_source(path, part)
        reader = pacsv.open_csv(
            source,
            # Serial parsing: only then does pyarrow tell where a malformed row was, which keeps
            # every row number exact. Large files are parsed in parallel by parts (`split_file`).
            read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES, use_threads=False, column_names=column_names),
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

    return batches(), malformed
