"""Which checkpoint a run continues from, and what happens when it cannot be read.

A run continues from `checkpoint.load_dir` (a checkpoint root, or one `iter_*` directory), else
from the latest checkpoint in its save_dir, else from step 0. Before Megatron-Core reads a
checkpoint, rank 0 compares its files with the sizes and checksums recorded when it was written
(`checkpointing.integrity`); a load that fails anyway where it cannot be the layout's fault
(`UnreadableCheckpoint`) counts the same. An unreadable checkpoint is named with its damaged file,
and with `checkpoint.fallback` (the default) the run continues from the newest complete checkpoint
before it that can be read, saying so in one line; without it the run stops there (exit 2).

Every rank takes the same decision: rank 0's file check is broadcast, and a load error on any rank
counts for all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch.distributed as dist

from sparseehr_mcore.checkpointing.integrity import find_damage
from sparseehr_mcore.checkpointing.layout import (
    LATEST_FILE,
    METADATA_FILE,
    complete_checkpoints,
    iteration_dir,
    latest_iteration,
    resolve_checkpoint,
)
from sparseehr_mcore.training.checkpoint import TrainingState, UnreadableCheckpoint


def checkpoints_to_try(load_dir: str | Path | None, save_dir: str | Path | None) -> tuple[list[Path], list[str]]:
    """The checkpoints a run may continue from, newest first, and the problems already known: the
    one latest_iteration.txt names (then those before it) of `load_dir`, else of `save_dir`.

    Returns:
        (complete checkpoints, newest first; a problem when the latest one is incomplete). Both are
        empty for a fresh run (no load_dir, and no checkpoint in save_dir).

    Raises:
        FileNotFoundError: `load_dir` holds no checkpoint at all.
    """
    if load_dir is not None:
        root = Path(load_dir)
        if (root / METADATA_FILE).is_file():  # one checkpoint, named on purpose: nothing before it
            return [root], []
        if not root.is_dir() or latest_iteration(root) is None:
            resolve_checkpoint(root)  # raises, saying why
    elif save_dir is not None and latest_iteration(save_dir) is not None:
        root = Path(save_dir)
    else:
        return [], []
    latest = latest_iteration(root)
    newest_first = [path for iteration, path in reversed(complete_checkpoints(root).items()) if iteration <= latest]
    if newest_first and newest_first[0] == iteration_dir(root, latest):
        return newest_first, []
    return newest_first, [f"{root / LATEST_FILE} names iteration {latest}, but {iteration_dir(root, latest)} is incomplete"]


def _damage_on_rank0(directory: Path) -> str | None:
    """Rank 0's file check of `directory`, the same on every rank."""
    verdict = ["; ".join(find_damage(directory)) or None] if dist.get_rank() == 0 else [None]
    dist.broadcast_object_list(verdict, src=0)
    return verdict[0]


def _failure_on_any_rank(failure: str | None) -> str | None:
    """The first rank's load failure, if any rank failed, the same on every rank."""
    failures: list[str | None] = [None] * dist.get_world_size()
    dist.all_gather_object(failures, failure)
    return next((f for f in failures if f is not None), None)


def restore_checkpoint(
    *,
    load_dir: str | Path | None,
    save_dir: str | Path | None,
    fallback: bool,
    load: Callable[[Path], TrainingState],
    log: Callable[[str], None],
) -> TrainingState:
    """Continue from the newest readable checkpoint (see the module), or start at step 0.

    Args:
        load: restores one checkpoint into the run's model, optimizer and so on (a collective),
            raising UnreadableCheckpoint when its files cannot be read.

    Raises:
        UnreadableCheckpoint: the checkpoint cannot be read and `fallback` is off, or none can.
    """
    directories, problems = checkpoints_to_try(load_dir, save_dir)
    for directory in directories:
        if problems and not fallback:
            break
        problem = _damage_on_rank0(directory)
        if problem is None:
            state, failure = None, None
            try:
                state = load(directory)
            except UnreadableCheckpoint as err:
                failure = str(err)
            problem = _failure_on_any_rank(failure)
        if problem is None:
            if problems:
                log(f"the latest checkpoint cannot be read ({'; '.join(problems)}): continued from {directory}, "
                    "the newest readable one before it (checkpoint.fallback)")  # fmt: skip
            return state
        problems.append(problem)
    if not problems:
        return TrainingState()
    if not fallback:
        raise UnreadableCheckpoint(
            f"cannot resume: {problems[0]}. Repair or remove that checkpoint, or set checkpoint.fallback true "
            "to continue from the newest readable one before it"
        )
    raise UnreadableCheckpoint(f"no checkpoint to resume from can be read: {'; '.join(problems)}")
