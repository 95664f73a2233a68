"""Megatron-Core indexed datasets: one document (one sequence) per patient, merged in bucket order.

We write the `.bin`/`.idx` files ourselves, in Megatron-Core's `MMIDIDX` format, because Megatron-Core
has no bulk writer and no torch-free one: its `IndexedDatasetBuilder` takes one Python call per
document (the bottleneck at tens of millions of patients) and its module imports torch (seconds in
every worker process). Reading stays Megatron-Core's `IndexedDataset`, which is what training uses;
tests/unit/data/test_data_indexed.py proves our files byte-identical to what its builder writes.
"""

from __future__ import annotations

import functools
import os
import shutil
import struct
import warnings
from pathlib import Path

import numpy as np

from sparseehr_mcore.data.ledger import PreprocessError

DTYPE = np.int32
# The code of `DType.int32` in megatron/core/datasets/indexed_dataset.py (megatron-core 0.16.1).
DTYPE_CODE = 4
INDEX_MAGIC = b"MMIDIDX\x00\x00"
INDEX_VERSION = 1
# magic, version, dtype code, sequence count, document count; little-endian without padding, as
# Megatron-Core packs them. The arrays after it are in native byte order, as Megatron-Core writes
# and reads them.
INDEX_HEADER = struct.Struct("<9sQBQQ")


@functools.cache
def megatron_indexed_dataset():
    """Megatron-Core's indexed dataset module, imported on first use (it imports torch) and
    without its import-time notes about absent Transformer Engine/apex (nothing to act on here)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*(Apex|Transformer Engine).* not installed.*")
        from megatron.core.datasets import indexed_dataset
    return indexed_dataset


def write_dataset(prefix: Path, ids: np.ndarray, lengths: np.ndarray) -> None:
    """Write `<prefix>.bin/.idx` with one document (of one sequence) per patient.

    Args:
        prefix: the dataset's path without suffix; its folder is created.
        ids: every patient's token ids, concatenated in patient order (stored as int32).
        lengths: the number of ids of each patient.

    Raises:
        ValueError: `lengths` do not add up to the number of `ids`.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    ids = np.asarray(ids, dtype=DTYPE)
    if int(lengths.sum()) != len(ids):
        raise ValueError(f"{prefix}: lengths add up to {int(lengths.sum())} ids, got {len(ids)}")
    prefix.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{prefix}.bin", "wb") as data:
        ids.tofile(data)
    # Megatron-Core's builder starts the document indices at 0 and appends after every document.
    _write_index(prefix, lengths, np.arange(len(lengths) + 1, dtype=np.int64))


def merge_datasets(parts: list[Path], prefix: Path) -> None:
    """Concatenate indexed datasets `parts` (in order) into `prefix`, as Megatron-Core's
    `IndexedDatasetBuilder.add_index` does; token bytes are streamed, so memory holds only the indices.

    Raises:
        PreprocessError: a part's index is not one `write_dataset` writes.
    """
    prefix.parent.mkdir(parents=True, exist_ok=True)
    lengths, document_indices = [np.empty(0, dtype=DTYPE)], [np.zeros(1, dtype=np.int64)]
    sequences_before = 0
    with open(f"{prefix}.bin", "wb") as data:
        for part in parts:
            part_lengths, part_document_indices = read_index(part)
            lengths.append(part_lengths)
            # A part's leading 0 is the merged dataset's previous end, already listed.
            document_indices.append(sequences_before + part_document_indices[1:])
            sequences_before += len(part_lengths)
            with open(f"{part}.bin", "rb") as part_data:
                shutil.copyfileobj(part_data, data)
    _write_index(prefix, np.concatenate(lengths), np.concatenate(document_indices))


def read_index(prefix: Path) -> tuple[np.ndarray, np.ndarray]:
    """(sequence lengths, document indices) of `<prefix>.idx`, which `write_dataset` or
    `merge_datasets` wrote; the sequence pointers follow from the lengths and are skipped.

    Raises:
        PreprocessError: another header, version or dtype, sequence modes, or a truncated file.
    """
    path = Path(f"{prefix}.idx")
    with open(path, "rb") as index:
        header = index.read(INDEX_HEADER.size)
    if len(header) < INDEX_HEADER.size:
        raise PreprocessError(f"{path}: too short for a Megatron-Core index header")
    magic, version, dtype_code, sequences, documents = INDEX_HEADER.unpack(header)
    if (magic, version, dtype_code) != (INDEX_MAGIC, INDEX_VERSION, DTYPE_CODE):
        raise PreprocessError(
            f"{path}: not a Megatron-Core index of int32 tokens (magic {magic!r}, version {version}, "
            f"dtype code {dtype_code}; expected {INDEX_MAGIC!r}, {INDEX_VERSION}, {DTYPE_CODE})"
        )
    pointers_end = INDEX_HEADER.size + sequences * (4 + 8)  # an int32 length, an int64 pointer per sequence
    size, expected_size = path.stat().st_size, pointers_end + documents * 8
    if size != expected_size:
        raise PreprocessError(
            f"{path}: {size} bytes, but its header ({sequences} sequences, {documents} documents, "
            f"no sequence modes) needs {expected_size}: truncated, or not written by this tool"
        )
    lengths = np.fromfile(path, dtype=np.int32, count=sequences, offset=INDEX_HEADER.size)
    document_indices = np.fromfile(path, dtype=np.int64, count=documents, offset=pointers_end)
    return lengths, document_indices


def _write_index(prefix: Path, lengths: np.ndarray, document_indices: np.ndarray) -> None:
    """`<prefix>.idx` for sequences of `lengths` tokens grouped by `document_indices`."""
    byte_lengths = lengths.astype(np.int64) * np.dtype(DTYPE).itemsize
    pointers = np.cumsum(byte_lengths) - byte_lengths  # where each sequence starts in the .bin
    with open(f"{prefix}.idx", "wb") as index:
        index.write(INDEX_HEADER.pack(INDEX_MAGIC, INDEX_VERSION, DTYPE_CODE, len(lengths), len(document_indices)))
        lengths.astype(np.int32).tofile(index)
        pointers.tofile(index)
        document_indices.astype(np.int64).tofile(index)


def publish(work_prefix: Path, final_prefix: Path) -> None:
    """Move a finished dataset into place (rename is atomic within one filesystem)."""
    final_prefix.parent.mkdir(parents=True, exist_ok=True)
    for suffix in (".bin", ".idx"):
        os.replace(str(work_prefix) + suffix, str(final_prefix) + suffix)


def open_dataset(prefix: Path):
    """Open with Megatron-Core's `IndexedDataset` (what training uses)."""
    return megatron_indexed_dataset().IndexedDataset(str(prefix), multimodal=False, mmap=True)
