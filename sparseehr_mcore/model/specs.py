"""The hybrid dense-to-MoE layer pattern as Megatron-Core ModuleSpecs.

This is the only module that chooses between Transformer Engine layers and Megatron-Core's local
layers. Both come from Megatron-Core's own spec builders; the local spec gets a norm that works
under sequence parallelism (see `norms.py`) and, by default, a core attention on torch's fused
`scaled_dot_product_attention` (see `attention.py`; docs/model.md says why it is the default).
"""

from __future__ import annotations

import dataclasses

from sparseehr_mcore.compat import have_cuda, have_transformer_engine
from sparseehr_mcore.config import ConfigError, ModelConfig

from megatron.core.models.gpt.gpt_layer_specs import (
    get_gpt_layer_local_spec,
    get_gpt_layer_with_transformer_engine_spec,
)
from megatron.core.transformer.dot_product_attention import DotProductAttention
from megatron.core.transformer.spec_utils import ModuleSpec
from megatron.core.transformer.transformer_block import (
    TransformerBlockSubmodules,
    get_num_layers_to_build,
)
from megatron.core.transformer.transformer_config import TransformerConfig
from megatron.core.transformer.transformer_layer import get_transformer_layer_offset

from sparseehr_mcore.model.attention import SDPADotProductAttention
from sparseehr_mcore.model.norms import SequenceParallelTorchNorm

# The local spec's core attention: torch's fused SDPA (default), or Megatron-Core's unfused one.
LOCAL_ATTENTIONS = {"sdpa": SDPADotProductAttention, "unfused": DotProductAttention}


def resolve_transformer_impl(requested: str) -> str:
    """Turn `auto | te | local` into `te` or `local`, with a clear error when `te` cannot work."""
    te_usable = have_transformer_engine() and have_cuda()
    if requested == "auto":
        return "te" if te_usable else "local"
    if requested == "te" and not te_usable:
        raise ConfigError(
            "transformer_impl='te' needs Transformer Engine and a CUDA device "
            f"(transformer_engine importable: {have_transformer_engine()}, CUDA available: {have_cuda()}); "
            "use transformer_impl='local' or 'auto', or run in the GPU image (docker/)"
        )
    return requested


def _local_layer_spec(model: ModelConfig, num_experts: int | None, *, local_attention: str) -> ModuleSpec:
    spec = get_gpt_layer_local_spec(
        num_experts=num_experts, moe_grouped_gemm=False, normalization=model.normalization
    )
    # The keys map renames local norms to the TE spec's fused names in checkpoints, so local and TE
    # checkpoints interchange. Megatron-Core's local spec applies the pre-MLP rename to MoE layers
    # too, but TE's MoE layers keep a separate `pre_mlp_layernorm` (a router cannot be fused with a
    # norm): for MoE layers the rename would make local checkpoints unloadable under TE.
    keys_map = dict(spec.submodules.sharded_state_dict_keys_map)
    if num_experts:
        keys_map.pop("pre_mlp_layernorm.", None)
    attention = spec.submodules.self_attention
    attention = dataclasses.replace(
        attention,
        submodules=dataclasses.replace(attention.submodules, core_attention=LOCAL_ATTENTIONS[local_attention]),
    )
    submodules = dataclasses.replace(
        spec.submodules,
        self_attention=attention,
        input_layernorm=SequenceParallelTorchNorm,
        pre_mlp_layernorm=SequenceParallelTorchNorm,
        sharded_state_dict_keys_map=keys_map,
    )
    return dataclasses.replace(spec, submodules=submodules)


def hybrid_layer_specs(model: ModelConfig, *, transformer_impl: str, local_attention: str = "sdpa") -> list[ModuleSpec]:
    """One ModuleSpec per layer of the whole stack: D dense layers, then MoE layers.

    `local_attention` (`sdpa` or `unfused`, a key of `LOCAL_ATTENTIONS`) is the local spec's core
    attention; Transformer Engine always uses its own.
    """
    if local_attention not in LOCAL_ATTENTIONS:
        raise ValueError(f"local_attention must be one of {sorted(LOCAL_ATTENTIONS)}, got {local_attention!r}")
    if transformer_impl == "te":
        dense = get_gpt_layer_with_transformer_engine_spec(num_experts=None)
        moe = get_gpt_layer_with_transformer_engine_spec(num_experts=model.num_experts, moe_grouped_gemm=False)
    elif transformer_impl == "local":
        dense = _local_layer_spec(model, None, local_attention=local_attention)
        moe = _local_layer_spec(model, model.num_experts, local_attention=local_attention)
    else:
        raise ValueError(f"transformer_impl must be resolved to 'te' or 'local', got {transformer_impl!r}")
    return [moe if kind == 1 else dense for kind in model.layer_pattern]


def decoder_block_spec(
    model: ModelConfig,
    transformer_config: TransformerConfig,
    *,
    transformer_impl: str,
    local_attention: str = "sdpa",
    pp_rank: int | None = None,
    vp_stage: int | None = None,
) -> TransformerBlockSubmodules:
    """The layers this pipeline stage builds, and the final norm."""
    layer_specs = hybrid_layer_specs(model, transformer_impl=transformer_impl, local_attention=local_attention)
    offset = get_transformer_layer_offset(transformer_config, vp_stage=vp_stage, pp_rank=pp_rank)
    count = get_num_layers_to_build(transformer_config, vp_stage=vp_stage, pp_rank=pp_rank)
    if transformer_impl == "te":
        from megatron.core.extensions.transformer_engine import TENorm

        final_norm = TENorm
    else:
        final_norm = SequenceParallelTorchNorm
    return TransformerBlockSubmodules(layer_specs=layer_specs[offset : offset + count], layer_norm=final_norm)
