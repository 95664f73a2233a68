"""ParallelConfig: how a model is laid out over processes (tensor, pipeline, expert, data)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sparseehr_mcore.config.base import ConfigError, config_from_dict, config_to_dict
from sparseehr_mcore.config.model import ModelConfig


@dataclass(kw_only=True)
class ParallelConfig:
    """Parallel layout. Data parallelism takes whatever the other sizes leave of the world size."""

    tensor_model_parallel_size: int = 1
    pipeline_model_parallel_size: int = 1
    expert_model_parallel_size: int = 1
    # None: experts are sharded like the dense layers (Megatron-Core's default, = TP size).
    expert_tensor_parallel_size: int | None = None
    # None: on whenever TP > 1. Megatron-Core's MoE layer requires it with TP > 1.
    sequence_parallel: bool | None = None

    HELP = {
        "tensor_model_parallel_size": "tensor parallel size (TP)",
        "pipeline_model_parallel_size": "pipeline parallel size (PP)",
        "expert_model_parallel_size": "expert parallel size (EP)",
        "expert_tensor_parallel_size": "tensor parallel size inside experts (default: TP)",
        "sequence_parallel": "sequence parallelism (default: on when TP > 1; required for MoE with TP > 1)",
    }

    def __post_init__(self) -> None:
        for key in ("tensor_model_parallel_size", "pipeline_model_parallel_size", "expert_model_parallel_size"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"ParallelConfig.{key} must be an integer >= 1, got {value!r}")
        if self.expert_tensor_parallel_size is not None and self.expert_tensor_parallel_size < 1:
            raise ConfigError(f"expert_tensor_parallel_size must be >= 1 or unset, got {self.expert_tensor_parallel_size}")

    @property
    def tp(self) -> int:
        return self.tensor_model_parallel_size

    @property
    def pp(self) -> int:
        return self.pipeline_model_parallel_size

    @property
    def ep(self) -> int:
        return self.expert_model_parallel_size

    @property
    def etp(self) -> int:
        return self.expert_tensor_parallel_size or self.tensor_model_parallel_size

    @property
    def uses_sequence_parallel(self) -> bool:
        return self.tp > 1 if self.sequence_parallel is None else self.sequence_parallel

    def data_parallel_size(self, world_size: int) -> int:
        return world_size // (self.tp * self.pp)

    def problems(self, model: ModelConfig | None = None, world_size: int | None = None) -> list[str]:
        """Every way this layout cannot hold `model` (if given) on `world_size` processes (if given)."""
        out: list[str] = []
        tp, pp, ep, etp = self.tp, self.pp, self.ep, self.etp
        if self.uses_sequence_parallel and tp == 1:
            out.append("sequence_parallel needs tensor parallel size > 1")
        if world_size is not None:
            if world_size % (tp * pp):
                out.append(
                    f"world size {world_size} is not divisible by tensor x pipeline parallel size ({tp} x {pp})"
                )
            elif (world_size // pp) % (ep * etp):
                out.append(
                    f"world size {world_size} / pipeline size {pp} is not divisible by expert x expert-tensor "
                    f"parallel size ({ep} x {etp})"
                )
        if model is None:
            return out
        if model.num_attention_heads % tp:
            out.append(f"tensor parallel size {tp} must divide num_attention_heads ({model.num_attention_heads})")
        if model.num_query_groups % tp:
            out.append(f"tensor parallel size {tp} must divide num_query_groups ({model.num_query_groups})")
        if model.padded_vocab_size % tp:
            out.append(f"tensor parallel size {tp} must divide the padded vocabulary ({model.padded_vocab_size})")
        if model.ffn_hidden_size % tp:
            out.append(f"tensor parallel size {tp} must divide ffn_hidden_size ({model.ffn_hidden_size})")
        if model.num_layers % pp:
            out.append(f"pipeline parallel size {pp} must divide num_layers ({model.num_layers})")
        if model.num_moe_layers:
            if model.num_experts % ep:
                out.append(f"expert parallel size {ep} must divide num_experts ({model.num_experts})")
            if model.moe_ffn_hidden_size % etp:
                out.append(f"expert tensor parallel size {etp} must divide moe_ffn_hidden_size ({model.moe_ffn_hidden_size})")
            if model.shared_expert_ffn_hidden_size % tp:
                out.append(
                    f"tensor parallel size {tp} must divide shared_expert_ffn_hidden_size "
                    f"({model.shared_expert_ffn_hidden_size})"
                )
            if tp > 1 and not self.uses_sequence_parallel:
                out.append("MoE layers with tensor parallel size > 1 need sequence_parallel (leave it unset or true)")
        elif ep > 1:
            out.append(f"expert parallel size {ep} given, but the model has no MoE layers (dense_prefix_layers = num_layers)")
        if self.uses_sequence_parallel and model.seq_length % tp:
            out.append(f"sequence parallel needs seq_length ({model.seq_length}) divisible by tensor parallel size {tp}")
        return out

    def validate(self, model: ModelConfig | None = None, world_size: int | None = None) -> None:
        """Raise ConfigError listing every problem of this layout (for `model`, on `world_size`)."""
        problems = self.problems(model, world_size)
        if problems:
            raise ConfigError("parallel layout does not fit the model:\n  - " + "\n  - ".join(problems), problems=problems)

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, where: str = "") -> "ParallelConfig":
        return config_from_dict(cls, values, where=where)
