"""The one declared table between Megatron-Core parameter names and Qwen2-MoE (Hugging Face) names.

Each row of `PARAMETER_MAP` names a mapping kind, where it applies (every layer, dense layers, MoE
layers, each routed expert, or once), the Megatron-Core name(s) and the Hugging Face name(s). A
Megatron-Core entry may list alternatives: the local spec's name first, then Transformer Engine's
(TE fuses the pre-attention norm into `linear_qkv` and a dense layer's pre-MLP norm into
`linear_fc1`). `{layer}` and `{expert}` are filled in by `expand_table`.

Conversion is strict both ways: a source key that no row consumes, or a row whose source key is
missing, raises with the key names. Only `_extra_state` entries (TE/FP8 bookkeeping, no weights)
are ignored, by declaration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from sparseehr_mcore.config import ModelConfig
from sparseehr_mcore.export.kinds import KINDS, ConversionError, KindContext

Scope = Literal["global", "layer", "dense", "moe", "expert"]

# Megatron-Core keys that carry no weights (TE's FP8 metadata; None in the local spec).
IGNORED_MCORE_SUFFIXES = ("._extra_state",)


@dataclass(frozen=True)
class Row:
    """One declared mapping: `kind` turns the `mcore` tensors into the `hf` tensors and back."""

    kind: str
    scope: Scope
    mcore: tuple[str | tuple[str, ...], ...]  # one entry per source tensor; a tuple = accepted aliases
    hf: tuple[str, ...]


L = "decoder.layers.{layer}."
H = "model.layers.{layer}."
PARAMETER_MAP: tuple[Row, ...] = (
    Row("padded_vocab", "global", ("embedding.word_embeddings.weight",), ("model.embed_tokens.weight",)),
    Row("direct", "global", ("decoder.final_layernorm.weight",), ("model.norm.weight",)),
    Row("tied_output", "global", ("output_layer.weight",), ("lm_head.weight",)),
    # Attention.
    Row(
        "direct", "layer",
        ((L + "input_layernorm.weight", L + "self_attention.linear_qkv.layer_norm_weight"),),
        (H + "input_layernorm.weight",),
    ),
    Row(
        "qkv_split", "layer", (L + "self_attention.linear_qkv.weight",),
        (H + "self_attn.q_proj.weight", H + "self_attn.k_proj.weight", H + "self_attn.v_proj.weight"),
    ),
    Row(
        "qkv_bias_split", "layer", (L + "self_attention.linear_qkv.bias",),
        (H + "self_attn.q_proj.bias", H + "self_attn.k_proj.bias", H + "self_attn.v_proj.bias"),
    ),
    Row("direct", "layer", (L + "self_attention.linear_proj.weight",), (H + "self_attn.o_proj.weight",)),
    # Dense FFN (the first D layers: HF `mlp_only_layers`).
    Row(
        "direct", "dense",
        ((L + "pre_mlp_layernorm.weight", L + "mlp.linear_fc1.layer_norm_weight"),),
        (H + "post_attention_layernorm.weight",),
    ),
    Row("glu_split", "dense", (L + "mlp.linear_fc1.weight",), (H + "mlp.gate_proj.weight", H + "mlp.up_proj.weight")),
    Row("direct", "dense", (L + "mlp.linear_fc2.weight",), (H + "mlp.down_proj.weight",)),
    # MoE layers: TE keeps a separate pre-MLP norm here as well.
    Row("direct", "moe", (L + "pre_mlp_layernorm.weight",), (H + "post_attention_layernorm.weight",)),
    Row("direct", "moe", (L + "mlp.router.weight",), (H + "mlp.gate.weight",)),
    Row(
        "glu_split", "expert", (L + "mlp.experts.local_experts.{expert}.linear_fc1.weight",),
        (H + "mlp.experts.{expert}.gate_proj.weight", H + "mlp.experts.{expert}.up_proj.weight"),
    ),
    Row(
        "direct", "expert", (L + "mlp.experts.local_experts.{expert}.linear_fc2.weight",),
        (H + "mlp.experts.{expert}.down_proj.weight",),
    ),
    Row(
        "glu_split", "moe", (L + "mlp.shared_experts.linear_fc1.weight",),
        (H + "mlp.shared_expert.gate_proj.weight", H + "mlp.shared_expert.up_proj.weight"),
    ),
    Row(
        "shared_expert_down", "moe", (L + "mlp.shared_experts.linear_fc2.weight",),
        (H + "mlp.shared_expert.down_proj.weight",),
    ),
    Row("shared_expert_gate", "moe", (L + "mlp.shared_experts.gate_weight",), (H + "mlp.shared_expert_gate.weight",)),
)  # fmt: skip


@dataclass(frozen=True)
class BoundRow:
    """A row with `{layer}`/`{expert}` filled in."""

    kind: str
    mcore: tuple[tuple[str, ...], ...]
    hf: tuple[str, ...]


def expand_table(model: ModelConfig) -> list[BoundRow]:
    """Every concrete mapping for `model`'s layer pattern, in a fixed order."""

    def bind(row: Row, **fill: int) -> BoundRow:
        aliases = tuple((names,) if isinstance(names, str) else names for names in row.mcore)
        return BoundRow(
            row.kind,
            tuple(tuple(name.format(**fill) for name in group) for group in aliases),
            tuple(name.format(**fill) for name in row.hf),
        )

    bound: list[BoundRow] = []
    for row in PARAMETER_MAP:
        if row.scope == "global":
            bound.append(bind(row))
            continue
        for layer, kind in enumerate(model.layer_pattern):
            is_moe = kind == 1
            if row.scope == "layer" or (row.scope == "dense" and not is_moe) or (row.scope == "moe" and is_moe):
                bound.append(bind(row, layer=layer))
            elif row.scope == "expert" and is_moe:
                bound.extend(bind(row, layer=layer, expert=expert) for expert in range(model.num_experts))
    return bound


def _take(state: dict[str, torch.Tensor], names: tuple[str, ...]) -> tuple[str, torch.Tensor] | None:
    present = [name for name in names if name in state]
    if len(present) > 1:
        raise ConversionError(f"both aliases of one parameter are present: {present}")
    return (present[0], state[present[0]]) if present else None


def mcore_to_hf(state: dict[str, torch.Tensor], model: ModelConfig) -> dict[str, torch.Tensor]:
    """Megatron-Core (local or TE names, unsharded) to Hugging Face tensors, keys sorted.

    Raises:
        ConversionError: a required key is missing, a key is left over, or a shape is wrong.
    """
    remaining = {k: v for k, v in state.items() if not k.endswith(IGNORED_MCORE_SUFFIXES)}
    context = KindContext(model)
    out: dict[str, torch.Tensor] = {}
    for row in expand_table(model):
        sources = []
        for aliases in row.mcore:
            found = _take(remaining, aliases)
            sources.append(None if found is None else found[1])
            if found is not None:
                del remaining[found[0]]
        where = " | ".join(aliases[0] for aliases in row.mcore)
        for name, tensor in zip(row.hf, KINDS[row.kind].to_hf(sources, context, where=where)):
            if tensor is not None:
                out[name] = tensor.detach().clone().contiguous()
    if remaining:
        raise ConversionError(f"Megatron-Core keys with no mapping: {sorted(remaining)}")
    return dict(sorted(out.items()))


def hf_to_mcore(state: dict[str, torch.Tensor], model: ModelConfig) -> dict[str, torch.Tensor]:
    """Hugging Face tensors to Megatron-Core local-spec names.

    Raises:
        ConversionError: a required key is missing, a key is left over, or a value cannot be
            represented by `model` (a non-zero shared-expert gate or q/k/v bias it does not have).
    """
    remaining = dict(state)
    context = KindContext(model)
    out: dict[str, torch.Tensor] = {}
    for row in expand_table(model):
        sources = [remaining.pop(name, None) for name in row.hf]
        where = " | ".join(row.hf)
        for aliases, tensor in zip(row.mcore, KINDS[row.kind].to_mcore(sources, context, where=where)):
            if tensor is not None:
                out[aliases[0]] = tensor.detach().clone().contiguous()
    if remaining:
        raise ConversionError(f"Hugging Face keys with no mapping: {sorted(remaining)}")
    return out


def hf_names_of(model: ModelConfig) -> dict[str, tuple[str, ...]]:
    """For each Megatron-Core (local) name, the Hugging Face names it is made from (for messages)."""
    return {aliases[0]: row.hf for row in expand_table(model) for aliases in row.mcore}
