"""Facts about a built (possibly sharded) model, gathered across the parallel layout."""

from __future__ import annotations

import torch
import torch.distributed as dist
from megatron.core import parallel_state


def _replicas(param: torch.nn.Parameter) -> int:
    """How many processes hold an identical copy of `param`."""
    tensor_parallel = getattr(param, "tensor_model_parallel", False)
    if not getattr(param, "allreduce", True):  # an expert's weight: sharded over EP (and expert TP)
        copies = parallel_state.get_expert_data_parallel_world_size()
        if not tensor_parallel:
            copies *= parallel_state.get_expert_tensor_parallel_world_size()
        return copies
    copies = parallel_state.get_data_parallel_world_size(with_context_parallel=True)
    if not tensor_parallel:
        copies *= parallel_state.get_tensor_model_parallel_world_size()
    return copies


def count_built_parameters(model: torch.nn.Module) -> int:
    """Distinct parameters of the whole model, summed over every process of the layout.

    Each process counts its parameters divided by how many processes replicate them; the last
    pipeline stage's copy of tied embeddings (`shared`) is left out, so the result matches
    `accounting.count_parameters(config).total` for any layout. A collective: call on every rank.
    """
    local = 0.0
    for param in model.parameters():
        if getattr(param, "shared", False):
            continue
        local += param.numel() / _replicas(param)
    if dist.is_initialized() and dist.get_world_size() > 1:
        total = torch.tensor([local], dtype=torch.float64)
        dist.all_reduce(total)
        local = total.item()
    return round(local)
