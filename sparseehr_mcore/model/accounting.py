"""Parameter and FLOP accounting for any ModelConfig, from the architecture alone (no model built).

Conventions:
- "total" counts every parameter once, whatever the parallel layout; the embedding has
  `padded_vocab_size` rows; tied embeddings count once.
- "active per token" is what one token's forward pass multiplies with: everything except the
  routed experts it is not sent to (num_experts - top_k per MoE layer). The input embedding is a
  lookup, but it is counted in "active" as the paper does; `active_non_embedding` leaves it out.
- FLOPs per token follow the PaLM / Megatron-LM convention: 2 FLOPs per multiply-accumulate, every
  matmul weight a token touches (the output projection always, tied or not), plus attention's
  score and value products over the full sequence (no causal discount); training = 3 x forward.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sparseehr_mcore.config import ModelConfig


@dataclass(frozen=True)
class ParameterCounts:
    """Parameter counts of one model, by part."""

    embedding: int
    output_layer: int  # 0 when tied to the embedding
    attention_per_layer: int  # q, k, v, output projections (+ qkv bias) and the layer's input norm
    dense_mlp_per_layer: int  # SwiGLU MLP and its pre-MLP norm
    router_per_layer: int
    routed_expert: int  # one routed expert
    shared_expert: int  # the shared expert (+ its gate), 0 if absent
    moe_norm_per_layer: int  # pre-MLP norm of an MoE layer
    final_norm: int
    num_dense_layers: int
    num_moe_layers: int
    num_experts: int
    router_topk: int

    @property
    def moe_layer_total(self) -> int:
        return self.moe_norm_per_layer + self.router_per_layer + self.num_experts * self.routed_expert + self.shared_expert

    @property
    def moe_layer_active(self) -> int:
        return self.moe_norm_per_layer + self.router_per_layer + self.router_topk * self.routed_expert + self.shared_expert

    @property
    def total(self) -> int:
        layers = self.num_dense_layers + self.num_moe_layers
        return (
            self.embedding
            + self.output_layer
            + layers * self.attention_per_layer
            + self.num_dense_layers * self.dense_mlp_per_layer
            + self.num_moe_layers * self.moe_layer_total
            + self.final_norm
        )

    @property
    def active(self) -> int:
        inactive = self.num_moe_layers * (self.num_experts - self.router_topk) * self.routed_expert
        return self.total - inactive

    @property
    def active_non_embedding(self) -> int:
        return self.active - self.embedding

    def as_dict(self) -> dict[str, int]:
        out = asdict(self)
        out.update(
            total=self.total,
            active=self.active,
            active_non_embedding=self.active_non_embedding,
            moe_layer_total=self.moe_layer_total,
            moe_layer_active=self.moe_layer_active,
        )
        return out


def _norm_size(model: ModelConfig) -> int:
    return model.hidden_size * (2 if model.normalization == "LayerNorm" else 1)


def _swiglu(hidden: int, ffn: int) -> int:
    # fc1 projects to 2*ffn (gate and up), fc2 back to hidden; no biases.
    return hidden * 2 * ffn + ffn * hidden


def count_parameters(model: ModelConfig) -> ParameterCounts:
    """Parameter counts of `model` by part (see the module docstring for conventions)."""
    h = model.hidden_size
    q_width = model.num_attention_heads * model.head_dim
    kv_width = model.num_query_groups * model.head_dim
    qkv_out = q_width + 2 * kv_width
    attention = _norm_size(model) + h * qkv_out + q_width * h + (qkv_out if model.qkv_bias else 0)
    has_moe = model.num_moe_layers > 0
    shared = 0
    if has_moe and model.shared_expert_ffn_hidden_size:
        shared = _swiglu(h, model.shared_expert_ffn_hidden_size) + (h if model.shared_expert_gate else 0)
    embedding = model.padded_vocab_size * h
    return ParameterCounts(
        embedding=embedding,
        output_layer=0 if model.tie_embeddings else embedding,
        attention_per_layer=attention,
        dense_mlp_per_layer=_norm_size(model) + _swiglu(h, model.ffn_hidden_size),
        router_per_layer=model.num_experts * h if has_moe else 0,
        routed_expert=_swiglu(h, model.moe_ffn_hidden_size) if has_moe else 0,
        shared_expert=shared,
        moe_norm_per_layer=_norm_size(model) if has_moe else 0,
        final_norm=_norm_size(model),
        num_dense_layers=model.dense_prefix_layers,
        num_moe_layers=model.num_moe_layers,
        num_experts=model.num_experts if has_moe else 0,
        router_topk=model.router_topk if has_moe else 0,
    )


def flops_per_token(model: ModelConfig, *, seq_length: int | None = None) -> dict[str, int]:
    """Forward and training FLOPs per token at `seq_length` (default: the model's)."""
    counts = count_parameters(model)
    seq = seq_length or model.seq_length
    norms = (2 * model.num_layers + 1) * _norm_size(model)  # two per layer, one final
    # Weights a token multiplies with: active parameters minus the embedding lookup and the norms;
    # a tied output projection reuses the embedding, so it is added back as a matmul.
    tied_output = counts.embedding if model.tie_embeddings else 0
    matmul_weights = counts.active - counts.embedding - norms + tied_output
    if model.qkv_bias:
        matmul_weights -= model.num_layers * (model.num_attention_heads + 2 * model.num_query_groups) * model.head_dim
    attention_width = model.num_attention_heads * model.head_dim
    # QK^T and AV: 2 products of seq x attention_width MACs each, per layer.
    attention = 2 * 2 * model.num_layers * seq * attention_width
    forward = 2 * matmul_weights + attention
    return {"forward": forward, "training": 3 * forward, "matmul_weights": matmul_weights, "seq_length": seq}
