"""The checkpoint directory layout: metadata round trip, 'latest' resolution, incomplete checkpoints,
pruning."""

from __future__ import annotations

import pytest

from sparseehr_mcore.checkpointing.layout import (
    METADATA_FILE,
    CheckpointMetadata,
    iteration_dir,
    mark_latest,
    prune_checkpoints,
    read_metadata,
    resolve_checkpoint,
    write_metadata,
)
from sparseehr_mcore.config import ConfigError, ModelConfig, ParallelConfig


def metadata(iteration: int = 20) -> CheckpointMetadata:
    return CheckpointMetadata(
        model=ModelConfig.from_preset("tiny"),
        parallel=ParallelConfig(tensor_model_parallel_size=2),
        iteration=iteration,
    )


def test_metadata_round_trips(tmp_path):
    write_metadata(tmp_path, metadata())
    assert read_metadata(tmp_path) == metadata()
    assert not list(tmp_path.glob("*.tmp"))


def test_root_resolves_to_the_latest_complete_checkpoint(tmp_path):
    for iteration in (10, 20):
        directory = iteration_dir(tmp_path, iteration)
        directory.mkdir()
        write_metadata(directory, metadata(iteration))
        mark_latest(tmp_path, iteration)
    assert resolve_checkpoint(tmp_path) == tmp_path / "iter_0000020"
    assert resolve_checkpoint(tmp_path / "iter_0000010") == tmp_path / "iter_0000010"


def test_missing_and_incomplete_checkpoints_say_why(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_checkpoint(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="holds no checkpoint"):
        resolve_checkpoint(tmp_path)
    iteration_dir(tmp_path, 30).mkdir()
    mark_latest(tmp_path, 30)  # latest written but the checkpoint itself never finished
    with pytest.raises(FileNotFoundError, match="names iteration 30, but .* is incomplete"):
        resolve_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match=f"no {METADATA_FILE}"):
        read_metadata(tmp_path)


def test_unknown_format_version_is_refused(tmp_path):
    (tmp_path / METADATA_FILE).write_text("format_version: 99\n")
    with pytest.raises(ConfigError, match="format version 99"):
        read_metadata(tmp_path)


def test_pruning_counts_and_deletes_only_complete_checkpoints(tmp_path):
    for iteration in (10, 20, 30):
        directory = iteration_dir(tmp_path, iteration)
        directory.mkdir()
        write_metadata(directory, metadata(iteration))
    # An interrupted save: the directory exists, its metadata file was never written.
    (iteration_dir(tmp_path, 40) / "model").mkdir(parents=True)
    deleted = prune_checkpoints(tmp_path, keep_last=2, keep=30)
    assert deleted == [tmp_path / "iter_0000010"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iter_0000020", "iter_0000030", "iter_0000040"]
    assert prune_checkpoints(tmp_path, keep_last=0) == []


def test_pruning_keeps_the_checkpoint_just_saved(tmp_path):
    # A run started from another checkpoint saves iteration 5 into a directory that already holds 20.
    for iteration in (5, 20):
        directory = iteration_dir(tmp_path, iteration)
        directory.mkdir()
        write_metadata(directory, metadata(iteration))
    assert prune_checkpoints(tmp_path, keep_last=1, keep=5) == []
    assert (tmp_path / "iter_0000005").is_dir()
