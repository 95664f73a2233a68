"""Megatron-Core indexed datasets: one document (one sequence) per patient, merged in bucket order."""

from __future__ import annotations

import functools
import gc
import os
import warnings
from pathlib import Path

import numpy as np

DTYPE = np.int32


@functools.cache
def megatron_indexed_dataset():
    """Megatron-Core's indexed dataset module, imported on first use (keeps `--help` fast) and
    without its import-time notes about absent Transformer Engine/apex (nothing to act on here)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*(Apex|Transformer Engine).* not installed.*")
        from megatron.core.datasets import indexed_dataset
    return indexed_dataset


class PatientDatasetWriter:
    """Writes patients' token ids to `<prefix>.bin/.idx` (index written on `close`)."""

    def __init__(self, prefix: Path) -> None:
        self.prefix = Path(prefix)
        self.prefix.parent.mkdir(parents=True, exist_ok=True)
        self.builder = megatron_indexed_dataset().IndexedDatasetBuilder(str(self.prefix) + ".bin", dtype=DTYPE)
        self.documents = 0
        self.tokens = 0

    def add_patient(self, ids: list[int]) -> None:
        self.builder.add_document(np.asarray(ids, dtype=DTYPE), [len(ids)])
        self.documents += 1
        self.tokens += len(ids)

    def close(self) -> None:
        self.builder.finalize(str(self.prefix) + ".idx")


def merge_datasets(parts: list[Path], prefix: Path) -> None:
    """Concatenate indexed datasets `parts` (in order) into `prefix` with Megatron-Core's builder."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    builder = megatron_indexed_dataset().IndexedDatasetBuilder(str(prefix) + ".bin", dtype=DTYPE)
    # add_index runs gc.collect() per part; freezing the (large, long-lived) heap first keeps that
    # from scanning every object the run has created.
    gc.freeze()
    try:
        for part in parts:
            builder.add_index(str(part))
    finally:
        gc.unfreeze()
    builder.finalize(str(prefix) + ".idx")


def publish(work_prefix: Path, final_prefix: Path) -> None:
    """Move a finished dataset into place (rename is atomic within one filesystem)."""
    final_prefix.parent.mkdir(parents=True, exist_ok=True)
    for suffix in (".bin", ".idx"):
        os.replace(str(work_prefix) + suffix, str(final_prefix) + suffix)


def open_dataset(prefix: Path):
    """Open with Megatron-Core's `IndexedDataset` (what training uses)."""
    return megatron_indexed_dataset().IndexedDataset(str(prefix), multimodal=False, mmap=True)
