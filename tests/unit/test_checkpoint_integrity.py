"""Checkpoint files checked against what was written, the choice of checkpoint to resume from, and
no helper process left by a save: on real dist_checkpointing saves of a tiny model (one gloo process)."""

from __future__ import annotations

import os
import subprocess
import sys

import psutil
import pytest

from sparseehr_mcore.checkpointing.integrity import FILES_RECORD, find_damage
from sparseehr_mcore.checkpointing.layout import CheckpointMetadata, iteration_dir, mark_latest
from sparseehr_mcore.config import ParallelConfig
from sparseehr_mcore.training.checkpoint import TrainingState, UnreadableCheckpoint
from sparseehr_mcore.training.resume import checkpoints_to_try, restore_checkpoint


@pytest.fixture(scope="module")
def tiny_model(single_process_world):
    from sparseehr_mcore.config import ModelConfig
    from sparseehr_mcore.model.builder import build_model

    config = ModelConfig.from_preset("tiny")
    return config, build_model(config, ParallelConfig())


def save(tiny_model, root, iteration: int):
    from sparseehr_mcore.checkpointing.weights import save_weights

    config, model = tiny_model
    directory = iteration_dir(root, iteration)
    save_weights(model, directory, metadata=CheckpointMetadata(model=config, parallel=ParallelConfig(), iteration=iteration))
    mark_latest(root, iteration)
    return directory


def shard_of(directory):
    return sorted(directory.glob("*.distcp"))[0]


def test_an_intact_checkpoint_has_no_damage(tmp_path, tiny_model):
    directory = save(tiny_model, tmp_path, 10)
    assert (directory / FILES_RECORD).is_file()
    assert find_damage(directory) == []


def test_a_truncated_file_is_named_with_its_sizes(tmp_path, tiny_model):
    directory = save(tiny_model, tmp_path, 10)
    shard = shard_of(directory)
    written = shard.stat().st_size
    shard.write_bytes(shard.read_bytes()[:100])
    assert find_damage(directory) == [f"{shard} has 100 bytes, {written:,} when written"]


def test_a_changed_file_of_the_same_size_is_found_by_its_checksum(tmp_path, tiny_model):
    directory = save(tiny_model, tmp_path, 10)
    shard = shard_of(directory)
    content = bytearray(shard.read_bytes())
    content[len(content) // 2] ^= 0xFF
    shard.write_bytes(bytes(content))
    assert find_damage(directory) == [f"{shard} differs from when it was written (CRC32)"]


def test_a_missing_file_is_named(tmp_path, tiny_model):
    directory = save(tiny_model, tmp_path, 10)
    (directory / "common.pt").unlink()
    assert find_damage(directory) == [f"{directory / 'common.pt'} is missing"]


def test_without_a_record_the_checkpoint_index_still_finds_a_file_cut_short(tmp_path, tiny_model):
    directory = save(tiny_model, tmp_path, 10)
    (directory / FILES_RECORD).unlink()
    assert find_damage(directory) == []
    shard = shard_of(directory)
    shard.write_bytes(shard.read_bytes()[:100])
    (damage,) = find_damage(directory)
    assert damage.startswith(f"{shard} has 100 bytes, its index places ")


def test_a_save_leaves_no_process_behind(tmp_path, tiny_model):
    # Megatron-Core 0.16 starts a multiprocessing Manager at a process's first save (compat fixes it).
    save(tiny_model, tmp_path, 10)
    assert not [command for command in running_children() if "resource_tracker" not in command]


SAVE_AND_COUNT_HELPERS = """
import tempfile, psutil
from sparseehr_mcore.config import ModelConfig, ParallelConfig
from sparseehr_mcore.distributed import initialize_distributed
from sparseehr_mcore.model.builder import build_model
from sparseehr_mcore.checkpointing.weights import save_weights
initialize_distributed(ParallelConfig(), seed=1)
save_weights(build_model(ModelConfig.from_preset("tiny"), ParallelConfig()), tempfile.mkdtemp())
print(sum("spawn_main" in " ".join(child.cmdline()) for child in psutil.Process().children()))
"""


@pytest.mark.parametrize("skip, helpers", [("", "0"), ("checkpoint_results_queue", "1")])
def test_megatron_core_still_needs_the_results_queue_fix(skip, helpers):
    """Without `compat.megatron_fixes.keep_checkpoint_write_results_in_process` a save starts a
    spawn Manager; when an upgrade stops doing so, this fails: delete the fix."""
    environment = {**os.environ, "SPARSEEHR_COMPAT_SKIP": skip, "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        environment.pop(name, None)
    done = subprocess.run([sys.executable, "-c", SAVE_AND_COUNT_HELPERS], capture_output=True, text=True,
                          timeout=300, env=environment)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-1] == helpers, done.stdout


def running_children() -> list[str]:
    """The command lines of this process's live descendants (zombies of earlier tests left out)."""
    commands = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                commands.append(" ".join(child.cmdline()))
        except psutil.Error:
            continue  # gone meanwhile
    return commands


def test_a_latest_checkpoint_left_incomplete_is_a_known_problem(tmp_path, tiny_model):
    older = save(tiny_model, tmp_path, 10)
    newer = save(tiny_model, tmp_path, 20)
    assert checkpoints_to_try(None, tmp_path) == ([newer, older], [])
    assert checkpoints_to_try(older, None) == ([older], [])  # named itself: nothing before it
    (newer / "sparseehr_checkpoint.yaml").unlink()
    directories, problems = checkpoints_to_try(None, tmp_path)
    assert directories == [older] and problems == [f"{tmp_path}/latest_iteration.txt names iteration 20, but {newer} is incomplete"]
    assert checkpoints_to_try(None, tmp_path / "fresh") == ([], [])


def record_loads(loaded: list, *, unreadable=()):
    def load(directory):
        loaded.append(directory.name)
        if directory.name in unreadable:
            raise UnreadableCheckpoint(f"cannot read {directory}: RuntimeError: boom")
        return TrainingState(iteration=int(directory.name.removeprefix("iter_")))

    return load


@pytest.mark.parametrize("damage", ["file", "load"])
def test_resume_falls_back_past_an_unreadable_checkpoint_in_one_line(tmp_path, tiny_model, damage):
    save(tiny_model, tmp_path, 10)
    newest = save(tiny_model, tmp_path, 20)
    if damage == "file":
        shard_of(newest).write_bytes(b"")
    loaded, lines = [], []
    load = record_loads(loaded, unreadable={"iter_0000020"} if damage == "load" else ())
    state = restore_checkpoint(load_dir=None, save_dir=tmp_path, fallback=True, load=load, log=lines.append)
    assert state.iteration == 10
    # A damaged file is found before anything is read; a load that fails counts the same.
    assert loaded == (["iter_0000010"] if damage == "file" else ["iter_0000020", "iter_0000010"])
    assert len(lines) == 1 and "continued from" in lines[0] and str(iteration_dir(tmp_path, 10)) in lines[0]
    assert (str(shard_of(newest)) if damage == "file" else "RuntimeError: boom") in lines[0]


def test_resume_without_fallback_stops_at_the_damaged_file(tmp_path, tiny_model):
    save(tiny_model, tmp_path, 10)
    shard = shard_of(save(tiny_model, tmp_path, 20))
    shard.write_bytes(b"")
    loaded = []
    with pytest.raises(UnreadableCheckpoint, match=f"cannot resume: {shard} has 0 bytes.*checkpoint.fallback true") as raised:
        restore_checkpoint(load_dir=None, save_dir=tmp_path, fallback=False, load=record_loads(loaded), log=print)
    assert loaded == [] and "\n" not in str(raised.value)


def test_resume_with_no_readable_checkpoint_lists_each(tmp_path, tiny_model):
    for iteration in (10, 20):
        shard_of(save(tiny_model, tmp_path, iteration)).write_bytes(b"")
    with pytest.raises(UnreadableCheckpoint, match="no checkpoint to resume from can be read: .*iter_0000020.*; .*iter_0000010"):
        restore_checkpoint(load_dir=None, save_dir=tmp_path, fallback=True, load=record_loads([]), log=print)
