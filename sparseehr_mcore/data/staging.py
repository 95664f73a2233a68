"""Stage: stream every input table once, clean each batch, and cut its rows into patient buckets.

Each (bucket, table file, file part) gets one Arrow IPC file under `<work>/stage/`, so any bucket can
later be processed alone, by another process or another node, with memory bounded by the bucket size.
A large CSV file is staged in parts (`reading.split_file`), one task each, so several workers share it.
"""

from __future__ import annotations

import functools
import glob
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc

from sparseehr_mcore.data.ledger import Ledger
from sparseehr_mcore.data.partition import bucket_of, patient_keys
from sparseehr_mcore.data.reading import FilePart, iter_table
from sparseehr_mcore.data.sources.base import SourceReader, TableSpec


def stage_path(work: Path, bucket: int, table: str, part: int) -> Path:
    return work / "stage" / f"b{bucket:05d}" / f"{table.replace('/', '__')}.part{part:05d}.arrow"


def staged_parts(work: Path, bucket: int, table: str) -> list[Path]:
    """The bucket's staged files of `table`, in part order (a part without rows here has none)."""
    name = glob.escape(table.replace("/", "__")) + ".part" + "[0-9]" * 5 + ".arrow"
    return sorted((work / "stage" / f"b{bucket:05d}").glob(name))


def stage_table(
    *, reader: SourceReader, spec: TableSpec, table: str, path: Path, part: tuple[int, FilePart], work: Path,
    num_buckets: int, strict: bool,
) -> Ledger:
    """Stream part `part` (number, range) of `path` (table `spec`, ledger name `table`) into bucket
    files; return its ledger."""
    part_number, file_part = part
    ledger = Ledger(strict=strict)
    writers: dict[int, ipc.RecordBatchFileWriter] = {}
    try:
        for batch in iter_table(
            path, table=table, columns=list(spec.columns), optional=spec.optional_columns, ledger=ledger, part=file_part
        ):
            cleaned = reader.clean(spec.name, batch, ledger)
            if cleaned.height == 0:
                continue
            cleaned = cleaned.with_columns(bucket_of(patient_keys(cleaned["patient_id"]), num_buckets))
            for (bucket,), part in cleaned.partition_by("bucket", as_dict=True, maintain_order=True).items():
                arrow = part.drop("bucket").to_arrow()
                writer = writers.get(bucket)
                if writer is None:
                    target = stage_path(work, bucket, table, part_number)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    writer = writers[bucket] = ipc.new_file(str(target), arrow.schema)
                writer.write_table(arrow)
    finally:
        for writer in writers.values():
            writer.close()
    return ledger


@functools.lru_cache(maxsize=16)
def empty_cleaned(reader: SourceReader, spec: TableSpec) -> pl.DataFrame:
    """The cleaned schema of `spec` with no rows (for buckets a table has no rows in); cached, as
    every bucket of a run asks for it (cleaning even no rows runs the reader's whole chain)."""
    raw = pl.DataFrame(schema={**{c: pl.Utf8 for c in spec.all_columns}, "_table": pl.Utf8, "_row": pl.Int64})
    return reader.clean(spec.name, raw, Ledger())


def load_staged(reader: SourceReader, tables: list[tuple[str, str, Path]], work: Path, bucket: int) -> dict[str, pl.DataFrame]:
    """The cleaned rows of one bucket, per table spec name (several files of one spec concatenated)."""
    specs = {spec.name: spec for spec in reader.tables}
    frames: dict[str, list[pl.DataFrame]] = {}
    for spec_name, table, _ in tables:
        for target in staged_parts(work, bucket, table):
            with pa.memory_map(str(target)) as source:
                frames.setdefault(spec_name, []).append(pl.from_arrow(ipc.open_file(source).read_all()))
    result = {}
    for spec_name in {name for name, _, _ in tables}:
        empty = empty_cleaned(reader, specs[spec_name])
        parts = [f.cast(empty.schema) for f in frames.get(spec_name, [])]
        result[spec_name] = pl.concat(parts) if parts else empty
    return result
