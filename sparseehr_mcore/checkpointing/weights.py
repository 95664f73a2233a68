"""Model weights through Megatron-Core's `dist_checkpointing`, independent of the parallel layout.

A checkpoint saved under one TP/PP/EP layout loads under another: each process reads the shards it
owns. The model's state sits under the top-level key "model" so that training checkpoints can add
"optimizer", "rng" and so on beside it, and `load_weights` reads the model part of either kind.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
from megatron.core import dist_checkpointing

from sparseehr_mcore.checkpointing.integrity import record_files
from sparseehr_mcore.checkpointing.layout import CheckpointMetadata, write_metadata


@contextlib.contextmanager
def torch_checkpoint_deprecations_silenced():
    """Megatron-Core 0.16 drives torch.distributed.checkpoint through APIs torch 2.13 marks as
    deprecated (ShardedTensor, load_state_dict); the FutureWarnings say nothing a user can act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.distributed\.checkpoint")
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"megatron\.core\.dist_checkpointing")
        yield


def save_weights(model: torch.nn.Module, directory: str | Path, *, metadata: CheckpointMetadata | None = None) -> None:
    """Save `model`'s weights to a new or empty `directory` (a collective: call on every rank).

    Args:
        model: this rank's (possibly sharded) model.
        directory: the checkpoint directory.
        metadata: written last (by rank 0, after the files' sizes and checksums) to mark the
            checkpoint complete; None for bare weights.
    """
    directory = Path(directory)
    rank = dist.get_rank() if dist.is_initialized() else 0
    if rank == 0:
        directory.mkdir(parents=True, exist_ok=True)
    if dist.is_initialized():
        dist.barrier()
    with torch_checkpoint_deprecations_silenced():
        dist_checkpointing.save({"model": model.sharded_state_dict()}, str(directory))
    if metadata is not None:
        if dist.is_initialized():
            dist.barrier()  # every rank's files are written before rank 0 records them
        if rank == 0:
            record_files(directory)
            write_metadata(directory, metadata)
    if dist.is_initialized():
        dist.barrier()


def load_weights(model: torch.nn.Module, directory: str | Path) -> None:
    """Load the model weights of a checkpoint (saved under any layout) into `model`, strictly.

    Raises:
        FileNotFoundError: `directory` holds no distributed checkpoint.
        RuntimeError: the checkpoint's parameters do not match the model's.
    """
    directory = Path(directory)
    if not dist_checkpointing.check_is_distributed_checkpoint(str(directory)):
        raise FileNotFoundError(f"{directory} is not a Megatron-Core distributed checkpoint")
    with torch_checkpoint_deprecations_silenced():
        state = dist_checkpointing.load({"model": model.sharded_state_dict()}, str(directory))["model"]
    result = model.load_state_dict(state, strict=False)
    missing = [key for key in result.missing_keys if not key.endswith("_extra_state")]
    if missing or result.unexpected_keys:
        raise RuntimeError(
            f"checkpoint {directory} does not match the model: missing {missing}, unexpected {result.unexpected_keys}"
        )
