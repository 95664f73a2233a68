"""ModelConfig: every architectural knob of a SparseEHR model, its presets, and their validation.

The hybrid pattern is explicit (DESIGN decision 1): `dense_prefix_layers` = D means layers 0..D-1 are
dense and layers D..L-1 are MoE; `layer_pattern` is the per-layer list handed to Megatron-Core as
`moe_layer_freq`, never an integer frequency (Megatron's `i % N` and Hugging Face's `(i+1) % N`
disagree).
"""

from __future__ import annotations

import dataclasses
from dataclasses import InitVar, dataclass
from pathlib import Path
from typing import Any

from sparseehr_mcore.config.base import (
    ConfigError,
    config_from_dict,
    config_to_dict,
    dump_yaml,
    load_yaml,
    raise_problems,
)

AUX_LOSS_TYPES = ("aux_loss", "seq_aux_loss", "global_aux_loss", "none")
TOKEN_DISPATCHERS = ("alltoall", "allgather")
TRANSFORMER_IMPLS = ("auto", "te", "local")
NORMALIZATIONS = ("RMSNorm", "LayerNorm")
ROUTER_DTYPES = ("fp32", "fp64", "none")


@dataclass(kw_only=True)
class ModelConfig:
    """Architecture of a hybrid dense-to-MoE GPT over typed EHR tokens.

    All FFNs are SwiGLU (gated, SiLU); attention is grouped-query with rotary position embeddings.
    """

    name: str = "custom"
    # Transformer stack.
    num_layers: int
    hidden_size: int
    dense_prefix_layers: int  # D: the first D layers are dense, the rest MoE.
    num_attention_heads: int
    num_query_groups: int  # GQA: key/value heads; equal to num_attention_heads means plain MHA.
    kv_channels: int | None = None  # head dimension; None means hidden_size // num_attention_heads.
    ffn_hidden_size: int  # SwiGLU width of the dense layers.
    normalization: str = "RMSNorm"
    norm_epsilon: float = 1e-6
    qkv_bias: bool = False
    rotary_base: float = 10000.0
    hidden_dropout: float = 0.0
    attention_dropout: float = 0.0
    init_method_std: float = 0.02
    # Mixture of experts (layers D..L-1).
    num_experts: int = 4
    moe_ffn_hidden_size: int  # SwiGLU width of each routed expert.
    router_topk: int = 1
    # Pre-softmax routing (softmax over all experts, then top-k) is what lets a top-1 router learn
    # from the language-model loss: with softmax after top-1 the routing weight is always 1.0.
    router_pre_softmax: bool = True
    router_dtype: str = "fp32"  # precision of the router's logits; "none" keeps the params dtype.
    shared_expert_ffn_hidden_size: int = 0  # 0 disables the shared ("general") expert.
    shared_expert_gate: bool = False  # the paper's general expert is ungated
    aux_loss_type: str = "aux_loss"
    aux_loss_coeff: float = 1e-2  # Megatron-Core defaults to 0: a load-balancing loss must be asked for
    z_loss_coeff: float = 0.0
    token_dispatcher: str = "alltoall"
    # Vocabulary and sequence.
    vocab_size: int  # the tokenizer's vocabulary; the embedding is padded (see padded_vocab_size)
    vocab_size_divisible_by: int = 128
    seq_length: int
    tie_embeddings: bool = True
    # Backend: "te" needs Transformer Engine and CUDA; "auto" picks te where both exist, else local.
    transformer_impl: str = "auto"
    # False builds the config without raising, for a caller that collects every problem of a run
    # (config.run) and still checks the layout against it; such a config must never be built into a model.
    check: InitVar[bool] = True

    HELP = {
        "name": "a label for this architecture (a preset sets its own name)",
        "num_layers": "transformer layers",
        "hidden_size": "model width",
        "dense_prefix_layers": "D: how many leading layers are dense; the rest are MoE",
        "num_attention_heads": "query heads",
        "num_query_groups": "key/value heads (GQA); equal to num_attention_heads for plain attention",
        "kv_channels": "head dimension (default: hidden_size / num_attention_heads)",
        "ffn_hidden_size": "SwiGLU width of the dense layers",
        "normalization": "RMSNorm or LayerNorm",
        "norm_epsilon": "epsilon of the norms",
        "qkv_bias": "add biases to the query/key/value projections",
        "rotary_base": "RoPE base frequency (theta)",
        "hidden_dropout": "dropout after attention and MLP",
        "attention_dropout": "dropout on attention probabilities",
        "init_method_std": "standard deviation of the normal weight init",
        "num_experts": "routed experts per MoE layer",
        "moe_ffn_hidden_size": "SwiGLU width of each routed expert",
        "router_topk": "routed experts per token (the paper: 1)",
        "router_pre_softmax": "softmax over all experts before top-k (required for top-1)",
        "router_dtype": "router logits precision: fp32, fp64 or none (params dtype)",
        "shared_expert_ffn_hidden_size": "SwiGLU width of the shared expert (0: none)",
        "shared_expert_gate": "sigmoid gate on the shared expert's output",
        "aux_loss_type": "load balancing: aux_loss, seq_aux_loss, global_aux_loss or none",
        "aux_loss_coeff": "load-balancing loss coefficient",
        "z_loss_coeff": "router z-loss coefficient (0: off)",
        "token_dispatcher": "MoE token dispatcher: alltoall or allgather",
        "vocab_size": "tokenizer vocabulary size; 'tokenizer' in a run config takes it from the data",
        "vocab_size_divisible_by": "embedding rows are padded to a multiple of this",
        "seq_length": "training sequence length (one patient per sequence)",
        "tie_embeddings": "share the input embedding and the output projection",
        "transformer_impl": "auto (TE where TE and CUDA exist), te, or local",
    }

    def __post_init__(self, check: bool) -> None:
        if check:
            raise_problems(self.problems(), f"ModelConfig {self.name!r}")

    # ------------------------------------------------------------------ derived quantities
    @property
    def head_dim(self) -> int:
        return self.kv_channels or self.hidden_size // self.num_attention_heads

    @property
    def num_moe_layers(self) -> int:
        return self.num_layers - self.dense_prefix_layers

    @property
    def layer_pattern(self) -> list[int]:
        """Per-layer kinds for Megatron-Core's `moe_layer_freq`: 0 dense, 1 MoE."""
        return [0] * self.dense_prefix_layers + [1] * self.num_moe_layers

    @property
    def padded_vocab_size(self) -> int:
        """Embedding rows: the vocabulary rounded up to `vocab_size_divisible_by`.

        The padding does not depend on the tensor-parallel size (unlike Megatron-LM's
        `divisible_by * TP`), so checkpoints keep one shape under every layout. Padding rows are
        never targets.
        """
        multiple = self.vocab_size_divisible_by
        return -(-self.vocab_size // multiple) * multiple

    # ------------------------------------------------------------------ validation
    def size_problems(self) -> list[str]:
        """The sizes that are not positive integers (every other check divides by them)."""
        out: list[str] = []
        positive = (
            "num_layers",
            "hidden_size",
            "num_attention_heads",
            "num_query_groups",
            "ffn_hidden_size",
            "vocab_size",
            "seq_length",
            "vocab_size_divisible_by",
        )
        for key in positive:
            if not isinstance(getattr(self, key), int) or getattr(self, key) <= 0:
                out.append(f"{key} must be a positive integer, got {getattr(self, key)!r}")
        return out

    def problems(self) -> list[str]:
        """Every inconsistency in this config, each phrased as what to change."""
        out = self.size_problems()
        if out:  # the checks below divide by these sizes
            return out
        if not 0 <= self.dense_prefix_layers <= self.num_layers:
            out.append(
                f"dense_prefix_layers (D={self.dense_prefix_layers}) must be between 0 and "
                f"num_layers ({self.num_layers})"
            )
        if self.num_attention_heads % self.num_query_groups:
            out.append(
                f"num_attention_heads ({self.num_attention_heads}) must be divisible by "
                f"num_query_groups ({self.num_query_groups})"
            )
        if self.kv_channels is None and self.hidden_size % self.num_attention_heads:
            out.append(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads}), or set kv_channels"
            )
        if self.kv_channels is not None and self.kv_channels <= 0:
            out.append(f"kv_channels must be positive, got {self.kv_channels}")
        # MoE fields are checked even when D = num_layers leaves no MoE layer: a config file with a
        # nonsensical router is wrong whether or not this run uses it.
        if self.num_experts < 1:
            out.append(f"num_experts must be >= 1, got {self.num_experts}")
        elif not 1 <= self.router_topk <= self.num_experts:
            out.append(f"router_topk ({self.router_topk}) must be between 1 and num_experts ({self.num_experts})")
        if self.router_topk == 1 and not self.router_pre_softmax:
            out.append(
                "router_topk=1 needs router_pre_softmax=True: with softmax after top-1 the routing "
                "weight is always 1.0 and the router gets no gradient from the LM loss"
            )
        if not isinstance(self.moe_ffn_hidden_size, int) or self.moe_ffn_hidden_size <= 0:
            out.append(f"moe_ffn_hidden_size must be a positive integer, got {self.moe_ffn_hidden_size!r}")
        if self.shared_expert_ffn_hidden_size < 0:
            out.append("shared_expert_ffn_hidden_size must be >= 0 (0 disables the shared expert)")
        if self.shared_expert_gate and self.shared_expert_ffn_hidden_size == 0:
            out.append("shared_expert_gate=True needs a shared expert (shared_expert_ffn_hidden_size > 0)")
        for key, allowed in (
            ("aux_loss_type", AUX_LOSS_TYPES),
            ("token_dispatcher", TOKEN_DISPATCHERS),
            ("transformer_impl", TRANSFORMER_IMPLS),
            ("normalization", NORMALIZATIONS),
            ("router_dtype", ROUTER_DTYPES),
        ):
            if getattr(self, key) not in allowed:
                out.append(f"{key} must be one of {', '.join(allowed)}; got {getattr(self, key)!r}")
        for key in ("aux_loss_coeff", "z_loss_coeff", "hidden_dropout", "attention_dropout"):
            if getattr(self, key) < 0:
                out.append(f"{key} must be >= 0, got {getattr(self, key)}")
        for key in ("hidden_dropout", "attention_dropout"):
            if getattr(self, key) >= 1:
                out.append(f"{key} must be < 1, got {getattr(self, key)}")
        if self.aux_loss_type == "none" and self.aux_loss_coeff > 0:
            out.append("aux_loss_type='none' with aux_loss_coeff > 0: set aux_loss_coeff to 0 or pick a type")
        if self.init_method_std <= 0 or self.norm_epsilon <= 0 or self.rotary_base <= 0:
            out.append("init_method_std, norm_epsilon and rotary_base must be positive")
        return out

    # ------------------------------------------------------------------ YAML and presets
    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, where: str = "") -> "ModelConfig":
        return config_from_dict(cls, values, where=where)

    def to_yaml(self, path: str | Path) -> None:
        dump_yaml(self.to_dict(), path)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "ModelConfig":
        """Load a config file; a `preset:` key starts from that preset and overrides its fields."""
        values = load_yaml(path)
        preset = values.pop("preset", None) if isinstance(values, dict) else None
        if preset is not None:
            return cls.from_preset(preset, **values)
        return cls.from_dict(values, where=str(path))

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> "ModelConfig":
        """A named preset (`paper`, `small`, `tiny`) with optional field overrides."""
        if preset not in PRESETS:
            raise ConfigError(f"unknown model preset {preset!r}; available: {', '.join(PRESETS)}")
        values = {**PRESETS[preset], **overrides}
        return cls.from_dict(values, where=f"preset {preset!r}")

    def replace(self, **changes: Any) -> "ModelConfig":
        return dataclasses.replace(self, **changes)


# The paper fixes 16 layers, hidden 2048, vocab 20,656, D=4 dense + 12 MoE layers of 4 experts,
# top-1 + one shared expert, GQA, RoPE, sequences of 2048; it does not give FFN widths, heads or
# query groups. These were chosen to land on its D=4 parameter counts (807M total, 470M active):
# see README "Parameter counts" and docs/model.md for the arithmetic and where D=0 departs.
PRESETS: dict[str, dict[str, Any]] = {
    "paper": dict(
        name="paper",
        num_layers=16,
        hidden_size=2048,
        dense_prefix_layers=4,
        num_attention_heads=16,
        num_query_groups=2,
        ffn_hidden_size=2048,
        num_experts=4,
        moe_ffn_hidden_size=1536,
        shared_expert_ffn_hidden_size=1536,
        router_topk=1,
        vocab_size=20656,
        seq_length=2048,
        tie_embeddings=True,
    ),
    # Trains on a laptop CPU in minutes; same shape family as the paper.
    "small": dict(
        name="small",
        num_layers=8,
        hidden_size=256,
        dense_prefix_layers=2,
        num_attention_heads=8,
        num_query_groups=2,
        ffn_hidden_size=512,
        num_experts=4,
        moe_ffn_hidden_size=256,
        shared_expert_ffn_hidden_size=256,
        router_topk=1,
        vocab_size=20656,
        seq_length=256,
    ),
    # For tests: builds and steps in well under a second on one CPU core.
    "tiny": dict(
        name="tiny",
        num_layers=4,
        hidden_size=64,
        dense_prefix_layers=2,
        num_attention_heads=4,
        num_query_groups=2,
        ffn_hidden_size=128,
        num_experts=4,
        moe_ffn_hidden_size=64,
        shared_expert_ffn_hidden_size=64,
        router_topk=1,
        vocab_size=256,
        seq_length=64,
    ),
}
