"""Named mapping kinds: how one group of Megatron-Core tensors becomes Hugging Face tensors and back.

Every kind is exact in floating point: splits and concatenations copy values, and the only
arithmetic (the ungated shared expert's factor 2) is a power of two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from sparseehr_mcore.config import ModelConfig

Tensors = list[torch.Tensor | None]


class ConversionError(ValueError):
    """A checkpoint cannot be converted: missing, leftover or ill-shaped keys, or unrepresentable values."""


@dataclass(frozen=True)
class KindContext:
    model: ModelConfig

    @property
    def heads_per_group(self) -> int:
        return self.model.num_attention_heads // self.model.num_query_groups


def _require(tensors: Tensors, where: str) -> list[torch.Tensor]:
    if any(tensor is None for tensor in tensors):
        raise ConversionError(f"missing key(s) for {where}")
    return tensors  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------- direct
def _direct(sources: Tensors, context: KindContext, *, where: str) -> Tensors:
    return _require(sources, where)


def _padded_vocab_check(sources: Tensors, context: KindContext, *, where: str) -> Tensors:
    # HF vocab_size is our padded_vocab_size: the padding rows travel with the embedding so that
    # logits have the same width on both sides (padding ids are never produced by the tokenizer).
    (embedding,) = _require(sources, where)
    if embedding.shape[0] != context.model.padded_vocab_size:
        raise ConversionError(
            f"{where}: {embedding.shape[0]} embedding rows, expected padded_vocab_size "
            f"{context.model.padded_vocab_size}"
        )
    return [embedding]


# ---------------------------------------------------------------------------------------- tied output
def _tied_output(sources: Tensors, context: KindContext, *, where: str) -> Tensors:
    # Tied models have no output-layer tensor on either side (HF re-ties lm_head on load).
    (output,) = sources
    if context.model.tie_embeddings:
        if output is not None:
            raise ConversionError(f"{where} is present but the model ties input and output embeddings")
        return [None]
    return _padded_vocab_check(sources, context, where=where)


# ---------------------------------------------------------------------------------------- attention
def _qkv_to_hf(sources: Tensors, context: KindContext, *, where: str) -> Tensors:
    # Megatron's fused QKV is interleaved per query group: [group][q heads..., k, v][head_dim].
    (fused,) = _require(sources, where)
    model = context.model
    groups, per_group, head_dim = model.num_query_groups, context.heads_per_group, model.head_dim
    expected_rows = groups * (per_group + 2) * head_dim
    if fused.shape[0] != expected_rows:
        raise ConversionError(f"{where}: {fused.shape[0]} rows, expected {expected_rows}")
    trailing = fused.shape[1:]
    grouped = fused.reshape(groups, per_group + 2, head_dim, *trailing)
    q = grouped[:, :per_group].reshape(groups * per_group * head_dim, *trailing)
    k = grouped[:, per_group].reshape(groups * head_dim, *trailing)
    v = grouped[:, per_group + 1].reshape(groups * head_dim, *trailing)
    return [q, k, v]


def _qkv_to_mcore(sources: Tensors, context: KindContext, *, where: str) -> Tensors:
    q, k, v = _require(sources, where)
    model = context.model
    groups, per_group, head_dim = model.num_query_groups, context.heads_per_group, model.head_dim
    trailing = q.shape[1:]
    expected_rows = {"q": groups * per_group * head_dim, "k": groups * head_dim, "v": groups * head_dim}
    for (name, rows), tensor in zip(expected_rows.items(), (q, k, v)):
        if tensor.shape[0] != rows:
            raise ConversionError(f"{where}: {name} has {tensor.shape[0]} rows, expected {rows}")
    grouped = torch.cat(
        [
            q.reshape(groups, per_group, head_dim, *trailing),
            k.reshape(groups, 1, head_dim, *trailing),
            v.reshape(groups, 1, head_dim, *trailing),
        ],
        dim=1,
    )
    return [grouped.reshape(groups * (per_group + 2) * head_dim, *trailing)]


def _qkv_bias_to_hf(sources: Tensors, context: KindContext, *, where: str) -> Tensors:
    # Qwen2-MoE checkpoints always carry q/k/v biases (transformers 4 has no switch for them), so a
    # model without them exports zeros.
    if context.model.qkv_bias:
        return _qkv_to_hf(sources, context, where=where)
    if sources[0] is not None:
        raise ConversionError(f"{where} is present but the model config has qkv_bias=False")
    model = context.model
    q_rows = model.num_attention_heads * model.head_dim
    kv_rows = model.num_query_groups * model.head_dim
    return [torch.zeros(q_rows), torch.zeros(kv_rows), torch.zeros(kv_rows)]


def _qkv_bias_to_mcore(sources: Tensors, context: KindContext, *, where: str) -> Tensors:
    if context.model.qkv_bias:
        return _qkv_to_mcore(sources, context, where=where)
    nonzero = [tensor is not None and bool(tensor.any()) for tensor in sources]
    if any(nonzero):
        raise ConversionError(f"{where}: non-zero q/k/v biases, but the model config has qkv_bias=False")
    return [None]


# ---------------------------------------------------------------------------------------- SwiGLU
def _glu_to_hf(sources: Tensors, context: KindContext, *, where: str) -> Tensors:
    # Megatron's linear_fc1 under a gated linear unit is [gate; up] along the output rows.
    (fused,) = _require(sources, where)
    if fused.shape[0] % 2:
        raise ConversionError(f"{where}: odd number of rows {fused.shape[0]} for a gated FFN")
    gate, up = torch.chunk(fused, 2, dim=0)
    return [gate, up]


def _glu_to_mcore(sources: Tensors, context: KindContext, *, where: str) -> Tensors:
    gate, up = _require(sources, where)
    if gate.shape != up.shape:
        raise ConversionError(f"{where}: gate {tuple(gate.shape)} and up {tuple(up.shape)} differ")
    return [torch.cat([gate, up], dim=0)]


# ---------------------------------------------------------------------------------------- shared expert
# HF always multiplies the shared expert by sigmoid(gate(x)). An ungated shared expert exports as a
# zero gate (sigmoid(0) = 0.5 exactly) with its down-projection doubled (exact: a power of two).
def _shared_down_to_hf(sources: Tensors, context: KindContext, *, where: str) -> Tensors:
    (down,) = _require(sources, where)
    return [down if context.model.shared_expert_gate else down * 2]


def _shared_down_to_mcore(sources: Tensors, context: KindContext, *, where: str) -> Tensors:
    (down,) = _require(sources, where)
    return [down if context.model.shared_expert_gate else down / 2]


def _shared_gate_to_hf(sources: Tensors, context: KindContext, *, where: str) -> Tensors:
    if context.model.shared_expert_gate:
        return _require(sources, where)
    if sources[0] is not None:
        raise ConversionError(f"{where} is present but the model config has shared_expert_gate=False")
    return [torch.zeros(1, context.model.hidden_size)]


def _shared_gate_to_mcore(sources: Tensors, context: KindContext, *, where: str) -> Tensors:
    (gate,) = _require(sources, where)
    if context.model.shared_expert_gate:
        return [gate]
    if gate.any():
        raise ConversionError(
            f"{where}: non-zero shared-expert gate, but the model config has shared_expert_gate=False "
            "(convert with --shared-expert-gate to keep the gate)"
        )
    return [None]


@dataclass(frozen=True)
class Kind:
    to_hf: Callable[..., Tensors]
    to_mcore: Callable[..., Tensors]


KINDS: dict[str, Kind] = {
    "direct": Kind(_direct, _direct),
    "padded_vocab": Kind(_padded_vocab_check, _padded_vocab_check),
    "tied_output": Kind(_tied_output, _tied_output),
    "qkv_split": Kind(_qkv_to_hf, _qkv_to_mcore),
    "qkv_bias_split": Kind(_qkv_bias_to_hf, _qkv_bias_to_mcore),
    "glu_split": Kind(_glu_to_hf, _glu_to_mcore),
    "shared_expert_down": Kind(_shared_down_to_hf, _shared_down_to_mcore),
    "shared_expert_gate": Kind(_shared_gate_to_hf, _shared_gate_to_mcore),
}
