"""The norm of the local (non-Transformer-Engine) layer spec, usable under sequence parallelism.

Megatron-Core's `WrappedTorchNorm` refuses `sequence_parallel=True` because torch's norms do not
all-reduce their weight gradients over the tensor-parallel group. That reduction is exactly what
Megatron-Core's `finalize_model_grads` does for every parameter tagged `sequence_parallel`, so a
torch norm whose parameters carry the tag is correct under sequence parallelism. Megatron-Core's MoE
layer requires sequence parallelism whenever TP > 1, so without this the local spec could not run
MoE with tensor parallelism at all (on CPU, or on GPUs without TE/apex).
"""

from __future__ import annotations

import torch
from megatron.core.transformer.transformer_config import TransformerConfig


class SequenceParallelTorchNorm:
    """Factory with Megatron's norm signature returning `torch.nn.RMSNorm` or `torch.nn.LayerNorm`."""

    def __new__(cls, config: TransformerConfig, hidden_size: int, eps: float = 1e-5, **unused_kwargs):
        if config.layernorm_zero_centered_gamma:
            raise ValueError("layernorm_zero_centered_gamma is not supported by the local torch norm")
        norm_class = {"RMSNorm": torch.nn.RMSNorm, "LayerNorm": torch.nn.LayerNorm}[config.normalization]
        norm = norm_class(hidden_size, eps=eps, dtype=config.params_dtype)
        for param in norm.parameters():
            # Replicated across the TP group; finalize_model_grads all-reduces tagged grads.
            param.sequence_parallel = config.sequence_parallel
        return norm
