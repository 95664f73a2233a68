"""Model weights on disk through Megatron-Core's `dist_checkpointing`, independent of the layout.

A directory saved under one TP/PP/EP layout loads under another: each process reads the shards it
owns. (Full training checkpoints with optimizer and RNG state live in the training package.)
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
from megatron.core import dist_checkpointing


def save_weights(model: torch.nn.Module, directory: str | Path) -> None:
    """Save `model`'s weights to an empty or new `directory` (a collective: call on every rank)."""
    directory = Path(directory)
    if not dist.is_initialized() or dist.get_rank() == 0:
        directory.mkdir(parents=True, exist_ok=True)
    if dist.is_initialized():
        dist.barrier()
    dist_checkpointing.save(model.sharded_state_dict(), str(directory))


def load_weights(model: torch.nn.Module, directory: str | Path) -> None:
    """Load weights saved by `save_weights` (under any layout) into `model`, strictly.

    Raises:
        FileNotFoundError: `directory` holds no distributed checkpoint.
        RuntimeError: the checkpoint's parameters do not match the model's.
    """
    directory = Path(directory)
    if not dist_checkpointing.check_is_distributed_checkpoint(str(directory)):
        raise FileNotFoundError(f"{directory} is not a Megatron-Core distributed checkpoint")
    state = dist_checkpointing.load(model.sharded_state_dict(), str(directory))
    result = model.load_state_dict(state, strict=False)
    missing = [key for key in result.missing_keys if not key.endswith("_extra_state")]
    if missing or result.unexpected_keys:
        raise RuntimeError(
            f"checkpoint {directory} does not match the model: missing {missing}, unexpected {result.unexpected_keys}"
        )
