"""Our bulk writer and merger give byte for byte the files of Megatron-Core's `IndexedDatasetBuilder`,
which reads them back; an index we did not write is refused with a clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

from sparseehr_mcore.data.indexed import merge_datasets, open_dataset, write_dataset
from sparseehr_mcore.data.ledger import PreprocessError


def random_documents(seed: int, count: int, *, max_length: int = 300) -> list[np.ndarray]:
    """`count` documents of 1..max_length ids over the whole non-negative int32 range."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 2**31 - 1, size=rng.integers(1, max_length + 1), dtype=np.int32) for _ in range(count)]


def write_ours(prefix: Path, documents: list[np.ndarray]) -> None:
    lengths = np.array([len(ids) for ids in documents], dtype=np.int64)
    write_dataset(prefix, np.concatenate([np.empty(0, dtype=np.int32), *documents]), lengths)


def write_megatron(prefix: Path, documents: list[np.ndarray]) -> None:
    """What the pipeline wrote before: one `add_document` per patient."""
    builder = IndexedDatasetBuilder(f"{prefix}.bin", dtype=np.int32)
    for ids in documents:
        builder.add_document(np.array(ids, dtype=np.int32), [len(ids)])
    builder.finalize(f"{prefix}.idx")


def assert_same_files(ours: Path, megatron: Path) -> None:
    for suffix in (".bin", ".idx"):
        assert Path(f"{ours}{suffix}").read_bytes() == Path(f"{megatron}{suffix}").read_bytes(), suffix


DOCUMENT_SETS = {
    "one-token": [np.array([7], dtype=np.int32)],
    "few": random_documents(1, 5, max_length=20),
    "many": random_documents(2, 3000),
    "none": [],  # a bucket without patients of a split still gets a part
}


@pytest.mark.parametrize("documents", DOCUMENT_SETS.values(), ids=DOCUMENT_SETS.keys())
def test_write_dataset_matches_megatron_builder(tmp_path, documents):
    write_ours(tmp_path / "ours" / "part", documents)
    write_megatron(tmp_path / "megatron", documents)
    assert_same_files(tmp_path / "ours" / "part", tmp_path / "megatron")
    if documents:  # Megatron-Core cannot map an empty .bin
        dataset = open_dataset(tmp_path / "ours" / "part")
        assert len(dataset) == len(documents)
        for index, ids in enumerate(documents):
            np.testing.assert_array_equal(dataset[index], ids)


@pytest.mark.parametrize("part_sizes", [(40, 0, 250), (1, 1, 1)], ids=["with-empty-part", "one-each"])
def test_merge_datasets_matches_megatron_add_index(tmp_path, part_sizes):
    parts, documents = [], []
    for index, count in enumerate(part_sizes):
        part_documents = random_documents(10 + index, count)
        write_ours(tmp_path / f"part{index}", part_documents)
        parts.append(tmp_path / f"part{index}")
        documents += part_documents
    merge_datasets(parts, tmp_path / "ours" / "merged")
    builder = IndexedDatasetBuilder(str(tmp_path / "megatron.bin"), dtype=np.int32)
    for part in parts:
        builder.add_index(str(part))
    builder.finalize(str(tmp_path / "megatron.idx"))
    assert_same_files(tmp_path / "ours" / "merged", tmp_path / "megatron")
    dataset = open_dataset(tmp_path / "ours" / "merged")
    assert len(dataset) == len(documents)
    np.testing.assert_array_equal(dataset[len(documents) - 1], documents[-1])


def uint16_index(prefix: Path) -> None:
    builder = IndexedDatasetBuilder(f"{prefix}.bin", dtype=np.uint16)
    builder.add_document(np.array([1, 2], dtype=np.uint16), [2])
    builder.finalize(f"{prefix}.idx")


def multimodal_index(prefix: Path) -> None:
    builder = IndexedDatasetBuilder(f"{prefix}.bin", dtype=np.int32, multimodal=True)
    builder.add_document(np.array([1, 2], dtype=np.int32), [2], modes=[0])
    builder.finalize(f"{prefix}.idx")


def other_magic(prefix: Path) -> None:
    write_ours(prefix, [np.array([1, 2], dtype=np.int32)])
    index = Path(f"{prefix}.idx")
    index.write_bytes(b"NOTANIDX\x00" + index.read_bytes()[9:])


def truncated(prefix: Path) -> None:
    write_ours(prefix, [np.array([1, 2], dtype=np.int32)])
    index = Path(f"{prefix}.idx")
    index.write_bytes(index.read_bytes()[:-8])


def header_only(prefix: Path) -> None:
    write_ours(prefix, [np.array([1, 2], dtype=np.int32)])
    index = Path(f"{prefix}.idx")
    index.write_bytes(index.read_bytes()[:5])


FOREIGN_INDICES = {
    "uint16-tokens": (uint16_index, "not a Megatron-Core index of int32 tokens"),
    "other-magic": (other_magic, "not a Megatron-Core index of int32 tokens"),
    "sequence-modes": (multimodal_index, "no sequence modes"),
    "truncated": (truncated, "truncated"),
    "shorter-than-header": (header_only, "too short"),
}


@pytest.mark.parametrize("make, message", FOREIGN_INDICES.values(), ids=FOREIGN_INDICES.keys())
def test_merge_refuses_an_index_it_did_not_write(tmp_path, make, message):
    write_ours(tmp_path / "good", [np.array([3], dtype=np.int32)])
    make(tmp_path / "foreign")
    with pytest.raises(PreprocessError, match=message) as raised:
        merge_datasets([tmp_path / "good", tmp_path / "foreign"], tmp_path / "merged")
    assert str(tmp_path / "foreign.idx") in str(raised.value)
