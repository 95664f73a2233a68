"""Training checkpoints through Megatron-Core's `dist_checkpointing`: weights, optimizer, scheduler,
RNG and data position, in the directory layout of `sparseehr_mcore.checkpointing.layout`.

Weights and optimizer state are saved as sharded tensors, so they load under another TP/PP/EP
layout where Megatron-Core can reshard them. RNG states belong to one process each and load only
under the layout they were saved with; under another layout they are left as seeded, and the run
says so. Resuming under the same layout continues exactly: same data order, optimizer and RNG.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from megatron.core import dist_checkpointing
from megatron.core.dist_checkpointing.mapping import ShardedObject
from megatron.core.tensor_parallel.random import get_cuda_rng_tracker
from torch.distributed.checkpoint.api import CheckpointException

from sparseehr_mcore.checkpointing.integrity import FILES_RECORD, record_files
from sparseehr_mcore.checkpointing.layout import (
    TOKENIZER_DIR,
    CheckpointMetadata,
    iteration_dir,
    mark_latest,
    prune_checkpoints,
    read_metadata,
    write_metadata,
)
from sparseehr_mcore.checkpointing.weights import torch_checkpoint_deprecations_silenced
from sparseehr_mcore.config import ConfigError, ModelConfig, ParallelConfig

# Fields that change parameter shapes or names: a checkpoint must agree on all of them.
SHAPE_FIELDS = (
    "num_layers", "hidden_size", "dense_prefix_layers", "num_attention_heads", "num_query_groups", "kv_channels",
    "ffn_hidden_size", "normalization", "qkv_bias", "num_experts", "moe_ffn_hidden_size",
    "shared_expert_ffn_hidden_size", "shared_expert_gate", "padded_vocab_size", "tie_embeddings",
)  # fmt: skip


class UnreadableCheckpoint(ConfigError):
    """A checkpoint whose files cannot be read (damaged, cut short, missing), with the file or error."""


@dataclass
class TrainingState:
    """Where training stands; saved with every checkpoint."""

    iteration: int = 0
    consumed_train_samples: int = 0


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The GPTModel inside Megatron-Core's DDP wrapper (or the model itself)."""
    return getattr(model, "module", model)


def _rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def _rng_sharded_object() -> ShardedObject:
    state = {
        "torch": torch.get_rng_state(),
        "tracker": get_cuda_rng_tracker().get_states(),
        "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None,
    }
    world = dist.get_world_size() if dist.is_initialized() else 1
    return ShardedObject("rng_state", state, (world,), (_rank(),), replica_id=0)


def _first_cause(err: BaseException) -> str:
    """One line on why a load failed: torch.distributed.checkpoint wraps each rank's exception in a
    CheckpointException whose own first line names only the ranks."""
    if isinstance(err, CheckpointException) and err.failures:
        rank = min(err.failures)
        rank_error, _traceback = err.failures[rank]
        return f"rank {rank}: {_first_cause(rank_error)}"
    return f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:300]}"


def check_shapes_match(saved: ModelConfig, current: ModelConfig, where: Path) -> None:
    """Raise ConfigError naming every shape-defining field where the checkpoint and the model differ."""
    differences = [
        f"{name}: checkpoint {getattr(saved, name)!r}, model {getattr(current, name)!r}"
        for name in SHAPE_FIELDS
        if getattr(saved, name) != getattr(current, name)
    ]
    if differences:
        raise ConfigError(
            f"checkpoint {where} holds another model shape:\n  - " + "\n  - ".join(differences)
        )


def save_training_checkpoint(
    root: str | Path,
    *,
    state: TrainingState,
    model: torch.nn.Module,
    optimizer,
    scheduler,
    model_config: ModelConfig,
    parallel: ParallelConfig,
    tokenizer_dir: str | Path | None,
    keep_last: int,
) -> Path:
    """Save a complete checkpoint of iteration `state.iteration` under `root` (a collective).

    Once every rank has written its files, rank 0 records their sizes and checksums
    (`checkpointing.integrity`), then writes the metadata file, then `latest_iteration.txt`: an
    interrupted save never looks complete, and a file damaged later is found on load. Complete
    checkpoints beyond the `keep_last` newest are deleted afterwards (0 keeps all; see
    `prune_checkpoints`).
    """
    directory = iteration_dir(root, state.iteration)
    if _rank() == 0 and directory.exists():  # a leftover of an interrupted save of the same step
        shutil.rmtree(directory)
    if _rank() == 0:
        directory.mkdir(parents=True)
    dist.barrier()
    # The bare model's keys, not the DDP wrapper's ("module." prefixed): one checkpoint format for
    # training checkpoints and weight-only ones (checkpointing.weights, HF conversion).
    model_state = _unwrap(model).sharded_state_dict()
    sharded = {
        "model": model_state,
        "optimizer": optimizer.sharded_state_dict(model_state),
        "scheduler": scheduler.state_dict(),
        "training": {"iteration": state.iteration, "consumed_train_samples": state.consumed_train_samples},
        "rng": _rng_sharded_object(),
    }
    with torch_checkpoint_deprecations_silenced():
        dist_checkpointing.save(sharded, str(directory))
    dist.barrier()  # every rank's files are written before rank 0 records them
    if _rank() == 0:
        if tokenizer_dir is not None:
            shutil.copytree(tokenizer_dir, directory / TOKENIZER_DIR)
        record_files(directory)
        write_metadata(
            directory,
            CheckpointMetadata(
                model=model_config,
                parallel=parallel,
                iteration=state.iteration,
                kind="training",
                world_size=dist.get_world_size(),
            ),
        )
        mark_latest(root, state.iteration)
        prune_checkpoints(root, keep_last=keep_last, keep=state.iteration)
    dist.barrier()
    return directory


def load_training_checkpoint(
    directory: Path,
    *,
    model: torch.nn.Module,
    optimizer,
    scheduler,
    model_config: ModelConfig,
    parallel: ParallelConfig,
    load_optimizer: bool,
    log=print,
) -> TrainingState:
    """Restore a checkpoint into the freshly built `model` (and optimizer, scheduler, RNG).

    A weights-only load (`load_optimizer=False`, or a checkpoint of kind "weights") also refreshes
    the mixed-precision optimizer's fp32 main parameters from the loaded weights.

    Raises:
        ConfigError: the checkpoint holds another model shape, or cannot be resharded to this layout.
        UnreadableCheckpoint: Megatron-Core cannot read what it should be able to (a damaged file).
    """
    metadata = read_metadata(directory)
    check_shapes_match(metadata.model, model_config, directory)
    same_layout = metadata.parallel == parallel and metadata.world_size == dist.get_world_size()
    restore_rest = load_optimizer and metadata.kind == "training"
    model_state = _unwrap(model).sharded_state_dict()
    request = {"model": model_state}
    if restore_rest:
        request["optimizer"] = optimizer.sharded_state_dict(model_state, is_loading=True)
        if same_layout:
            request["rng"] = _rng_sharded_object()
    try:
        # Returns the requested sharded entries merged into the checkpoint's common (plain) state.
        with torch_checkpoint_deprecations_silenced():
            loaded = dist_checkpointing.load(request, str(directory))
    # torch.distributed.checkpoint's CheckpointException derives from BaseException, not Exception.
    except (Exception, CheckpointException) as err:
        reason = _first_cause(err)
        if same_layout or not restore_rest:
            # Weights alone load under any layout, and everything loads under the layout it was
            # saved with: the files themselves cannot be read.
            raise UnreadableCheckpoint(f"cannot read {directory}: {reason}") from None
        hint = ""
        if restore_rest and metadata.parallel.ep != parallel.ep:
            # Megatron-Core keys optimizer state by optimizer: with expert parallelism the dense and
            # expert parameters get separate optimizers, so the state of one layout does not map
            # onto the other.
            hint = " Megatron-Core cannot map optimizer state across a change of expert-parallel size."
        if not (directory / FILES_RECORD).is_file():
            # Verified files make the layout the cause; without a record of them a damaged file may be.
            hint += f" It has no {FILES_RECORD} (an older checkpoint): a damaged file may be the cause too."
        raise ConfigError(
            f"cannot load {directory} (saved under {metadata.parallel}, world size {metadata.world_size}) into "
            f"this layout ({parallel}, world size {dist.get_world_size()}): {reason}.{hint} "
            "Loading the weights only (checkpoint.load_optimizer=false) works under any layout."
        ) from None
    result = _unwrap(model).load_state_dict(loaded["model"], strict=False)
    missing = [key for key in result.missing_keys if not key.endswith("_extra_state")]
    if missing or result.unexpected_keys:
        raise ConfigError(
            f"checkpoint {directory} does not match the model: missing {missing}, unexpected {result.unexpected_keys}"
        )
    if not restore_rest:
        # Under bf16 the optimizer already holds fp32 main copies of the weights it was built with
        # (the random init) and writes them back into the model after every step: take them from
        # the loaded weights, or the first step would undo this load (as Megatron-LM does for
        # --no-load-optim / --finetune). The main copies are the loaded bf16 values made fp32; with
        # fp32 weights there are no copies and this does nothing.
        optimizer.reload_model_params()
        log(f"loaded the weights of {directory} (iteration {metadata.iteration}); training starts at step 0")
        return TrainingState()
    optimizer.load_state_dict(loaded["optimizer"])
    scheduler.load_state_dict(loaded["scheduler"])
    if same_layout:
        rng = loaded["rng"]
        torch.set_rng_state(rng["torch"])
        get_cuda_rng_tracker().set_states(rng["tracker"])
        if rng["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state(rng["cuda"])
    else:
        log(f"{directory} was saved under another layout: RNG states are not restored (freshly seeded)")
    training = loaded["training"]
    log(f"resumed from {directory} at iteration {training['iteration']}")
    return TrainingState(iteration=training["iteration"], consumed_train_samples=training["consumed_train_samples"])
