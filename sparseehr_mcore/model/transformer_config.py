"""The one bridge from our configs to Megatron-Core's `TransformerConfig`."""

from __future__ import annotations

import torch

from sparseehr_mcore.compat import have_cuda
from sparseehr_mcore.config import ConfigError, ModelConfig, ParallelConfig

from megatron.core.transformer.transformer_config import TransformerConfig

PRECISIONS = ("fp32", "bf16", "fp8")


def to_transformer_config(
    model: ModelConfig,
    parallel: ParallelConfig,
    *,
    precision: str = "fp32",
    transformer_impl: str = "local",
    recompute: bool = False,
    per_token_loss: bool = False,
) -> TransformerConfig:
    """Megatron-Core's TransformerConfig for `model` laid out as `parallel`.

    Args:
        model: the architecture.
        parallel: the parallel layout (sizes must already fit the model: `parallel.validate`).
        precision: `fp32` (CPU, tests), `bf16`, or `fp8` (bf16 weights, FP8 matmuls; TE only).
        transformer_impl: the resolved backend, `te` or `local` (see `specs.resolve_transformer_impl`).
        recompute: recompute whole layers in the backward pass to save activation memory.
        per_token_loss: the loss function returns (sum, token count): gradients are averaged per
            target token over the global batch (and the MoE aux loss is scaled to match).
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp8" and transformer_impl != "te":
        raise ConfigError("precision='fp8' needs transformer_impl='te' (Transformer Engine on a GPU)")
    params_dtype = torch.float32 if precision == "fp32" else torch.bfloat16
    has_moe = model.num_moe_layers > 0
    moe_kwargs = {}
    if has_moe:
        moe_kwargs = dict(
            num_moe_experts=model.num_experts,
            moe_layer_freq=model.layer_pattern,
            moe_ffn_hidden_size=model.moe_ffn_hidden_size,
            moe_router_topk=model.router_topk,
            moe_router_pre_softmax=model.router_pre_softmax,
            moe_router_dtype=None if model.router_dtype == "none" else model.router_dtype,
            moe_shared_expert_intermediate_size=model.shared_expert_ffn_hidden_size or None,
            moe_shared_expert_gate=model.shared_expert_gate,
            moe_router_load_balancing_type=model.aux_loss_type,
            moe_aux_loss_coeff=model.aux_loss_coeff if model.aux_loss_type != "none" else 0.0,
            moe_z_loss_coeff=model.z_loss_coeff or None,
            moe_token_dispatcher_type=model.token_dispatcher,
            moe_grouped_gemm=False,
        )
    return TransformerConfig(
        num_layers=model.num_layers,
        hidden_size=model.hidden_size,
        num_attention_heads=model.num_attention_heads,
        num_query_groups=model.num_query_groups,
        kv_channels=model.head_dim,
        ffn_hidden_size=model.ffn_hidden_size,
        normalization=model.normalization,
        layernorm_epsilon=model.norm_epsilon,
        gated_linear_unit=True,
        activation_func=torch.nn.functional.silu,
        add_bias_linear=False,
        add_qkv_bias=model.qkv_bias,
        hidden_dropout=model.hidden_dropout,
        attention_dropout=model.attention_dropout,
        init_method_std=model.init_method_std,
        **moe_kwargs,
        tensor_model_parallel_size=parallel.tp,
        pipeline_model_parallel_size=parallel.pp,
        expert_model_parallel_size=parallel.ep,
        expert_tensor_parallel_size=parallel.etp,
        sequence_parallel=parallel.uses_sequence_parallel,
        params_dtype=params_dtype,
        pipeline_dtype=params_dtype,
        bf16=precision != "fp32",
        fp8="hybrid" if precision == "fp8" else None,
        fp8_recipe="delayed",
        # Without CUDA, weights can only be made on the CPU; there the master weight is drawn whole and
        # split, so every TP layout starts from the same values for the same seed.
        use_cpu_initialization=not have_cuda(),
        recompute_granularity="full" if recompute else None,
        recompute_method="uniform" if recompute else None,
        recompute_num_layers=1 if recompute else None,
        calculate_per_token_loss=per_token_loss,
        cuda_graph_scope=[],  # the default ("full") warns as deprecated on every construction
    )
