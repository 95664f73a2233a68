"""Process-group setup: torch.distributed (gloo on CPU, NCCL on GPU) and Megatron-Core's parallel state."""

from __future__ import annotations

import datetime
import os
import random
import socket
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from sparseehr_mcore.compat import apply_compat, have_cuda
from sparseehr_mcore.config import ModelConfig, ParallelConfig

from megatron.core import parallel_state
from megatron.core.tensor_parallel.random import model_parallel_cuda_manual_seed


@dataclass(frozen=True)
class ProcessPlace:
    """Where this process sits in the layout."""

    rank: int
    world_size: int
    tp_rank: int
    pp_rank: int
    ep_rank: int
    dp_rank: int
    dp_size: int


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def init_process_group(*, timeout_s: float = 600.0) -> None:
    """Join the process group torchrun describes in the environment, or make a group of one."""
    if dist.is_initialized():
        return
    backend = "nccl" if have_cuda() else "gloo"
    if have_cuda():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    timeout = datetime.timedelta(seconds=timeout_s)
    if "RANK" in os.environ:
        dist.init_process_group(backend=backend, timeout=timeout)
    else:  # a plain `python` run: a world of one, without touching the environment children inherit
        init_method = f"tcp://127.0.0.1:{_free_port()}"
        dist.init_process_group(backend=backend, init_method=init_method, rank=0, world_size=1, timeout=timeout)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy, torch and Megatron-Core's RNG tracker (which on its own seeds only CUDA).

    Pipeline stages get distinct seeds (as in Megatron-LM) so stages do not draw identical weights.
    """
    stage_seed = seed + 100 * parallel_state.get_pipeline_model_parallel_rank()
    random.seed(stage_seed)
    np.random.seed(stage_seed)
    torch.manual_seed(stage_seed)
    model_parallel_cuda_manual_seed(stage_seed, force_reset_rng=True)


def initialize_distributed(
    parallel: ParallelConfig,
    *,
    model: ModelConfig | None = None,
    seed: int = 1234,
    timeout_s: float = 600.0,
) -> ProcessPlace:
    """Set up torch.distributed, the compat layer and Megatron-Core's parallel groups, then seed.

    Args:
        parallel: the layout; checked against the world size (and `model`, if given) first.
        model: the model to be built, for layout checks before any compute.
        seed: base random seed.
        timeout_s: collective timeout.
    """
    init_process_group(timeout_s=timeout_s)
    apply_compat()
    world_size = dist.get_world_size()
    parallel.validate(model, world_size)
    if parallel_state.model_parallel_is_initialized():
        parallel_state.destroy_model_parallel()
    parallel_state.initialize_model_parallel(
        tensor_model_parallel_size=parallel.tp,
        pipeline_model_parallel_size=parallel.pp,
        expert_model_parallel_size=parallel.ep,
        expert_tensor_parallel_size=parallel.etp,
    )
    seed_everything(seed)
    return ProcessPlace(
        rank=dist.get_rank(),
        world_size=world_size,
        tp_rank=parallel_state.get_tensor_model_parallel_rank(),
        pp_rank=parallel_state.get_pipeline_model_parallel_rank(),
        ep_rank=parallel_state.get_expert_model_parallel_rank(),
        dp_rank=parallel_state.get_data_parallel_rank(),
        dp_size=parallel_state.get_data_parallel_world_size(),
    )


def shutdown_distributed() -> None:
    """Tear down Megatron-Core's groups and the process group (safe to call twice)."""
    if parallel_state.model_parallel_is_initialized():
        parallel_state.destroy_model_parallel()
    if dist.is_initialized():
        dist.destroy_process_group()
