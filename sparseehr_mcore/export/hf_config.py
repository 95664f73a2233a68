"""ModelConfig <-> Hugging Face `Qwen2MoeConfig` (DESIGN decision 4)."""

from __future__ import annotations

from typing import Any

from sparseehr_mcore.config import ModelConfig
from sparseehr_mcore.export.kinds import ConversionError

MODEL_TYPE = "qwen2_moe"
ARCHITECTURE = "Qwen2MoeForCausalLM"
# Our full ModelConfig rides along in config.json so that HF -> Megatron-Core restores the fields
# Qwen2-MoE has no place for (unpadded vocabulary, aux-loss settings, shared-expert gate, ...).
SPARSEEHR_KEY = "sparseehr_model_config"


def hf_config_dict(model: ModelConfig, *, special_ids: dict[str, int] | None = None) -> dict[str, Any]:
    """Keyword arguments for `Qwen2MoeConfig` that make Qwen2-MoE compute what `model` computes.

    Raises:
        ConversionError: `model` has a feature Qwen2-MoE cannot express.
    """
    if model.shared_expert_ffn_hidden_size == 0 and model.num_moe_layers:
        raise ConversionError("Qwen2-MoE always has a shared expert; this model has none (not supported)")
    if model.normalization != "RMSNorm":
        raise ConversionError(f"Qwen2-MoE uses RMSNorm; this model uses {model.normalization}")
    if not model.router_pre_softmax:
        raise ConversionError("Qwen2-MoE routes softmax-then-top-k; this model has router_pre_softmax=False")
    special_ids = special_ids or {}
    return dict(
        architectures=[ARCHITECTURE],
        vocab_size=model.padded_vocab_size,
        hidden_size=model.hidden_size,
        intermediate_size=model.ffn_hidden_size,
        num_hidden_layers=model.num_layers,
        num_attention_heads=model.num_attention_heads,
        num_key_value_heads=model.num_query_groups,
        head_dim=model.head_dim,
        hidden_act="silu",
        max_position_embeddings=model.seq_length,
        initializer_range=model.init_method_std,
        rms_norm_eps=model.norm_epsilon,
        tie_word_embeddings=model.tie_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": float(model.rotary_base)},
        use_sliding_window=False,
        attention_dropout=model.attention_dropout,
        # Dense layers are listed explicitly; every other layer is MoE (step 1).
        decoder_sparse_step=1,
        mlp_only_layers=list(range(model.dense_prefix_layers)),
        moe_intermediate_size=model.moe_ffn_hidden_size,
        shared_expert_intermediate_size=model.shared_expert_ffn_hidden_size,
        num_experts_per_tok=model.router_topk,
        num_experts=model.num_experts,
        # Pre-softmax top-k without renormalisation.
        norm_topk_prob=False,
        router_aux_loss_coef=model.aux_loss_coeff,
        # Biases are always written (zeros when the model has none): transformers 4 always has them.
        qkv_bias=True,
        pad_token_id=special_ids.get("pad"),
        eos_token_id=special_ids.get("eod"),
        bos_token_id=special_ids.get("bos"),
        dtype="float32",
        **{SPARSEEHR_KEY: model.to_dict()},
    )


def model_config_from_hf(values: dict[str, Any], *, shared_expert_gate: bool | None = None) -> ModelConfig:
    """The ModelConfig of a Qwen2-MoE config.json (as a dict), checked for a shape we can build.

    Args:
        values: the parsed config.json.
        shared_expert_gate: override; None keeps the embedded SparseEHR config's choice, or False.

    Raises:
        ConversionError: not a Qwen2-MoE config, or a layer pattern our model cannot express.
    """
    if values.get("model_type") != MODEL_TYPE:
        raise ConversionError(f"config.json has model_type {values.get('model_type')!r}, expected {MODEL_TYPE!r}")
    layers = values["num_hidden_layers"]
    dense = sorted(values.get("mlp_only_layers") or [])
    step = values.get("decoder_sparse_step", 1)
    if step != 1 or dense != list(range(len(dense))):
        raise ConversionError(
            f"only a dense prefix followed by MoE layers converts (decoder_sparse_step=1, mlp_only_layers=[0..D-1]); "
            f"got decoder_sparse_step={step}, mlp_only_layers={dense}"
        )
    if values.get("norm_topk_prob"):
        raise ConversionError("norm_topk_prob=True has no equivalent in our router (pre-softmax top-k, no renorm)")
    rope = values.get("rope_parameters") or {"rope_theta": values.get("rope_theta", 10000.0)}
    derived = dict(
        num_layers=layers,
        hidden_size=values["hidden_size"],
        dense_prefix_layers=len(dense),
        num_attention_heads=values["num_attention_heads"],
        num_query_groups=values.get("num_key_value_heads") or values["num_attention_heads"],
        kv_channels=values.get("head_dim"),
        ffn_hidden_size=values["intermediate_size"],
        norm_epsilon=values["rms_norm_eps"],
        rotary_base=float(rope["rope_theta"]),
        num_experts=values["num_experts"],
        moe_ffn_hidden_size=values["moe_intermediate_size"],
        router_topk=values["num_experts_per_tok"],
        shared_expert_ffn_hidden_size=values["shared_expert_intermediate_size"],
        seq_length=values["max_position_embeddings"],
        tie_embeddings=bool(values.get("tie_word_embeddings", False)),
    )
    embedded = values.get(SPARSEEHR_KEY)
    if embedded is not None:
        config = ModelConfig.from_dict(dict(embedded), where=f"config.json {SPARSEEHR_KEY}")
        for key, value in derived.items():
            ours = getattr(config, key)
            if key == "kv_channels":
                ours = config.head_dim
            if ours != value:
                raise ConversionError(f"config.json: {key}={value!r} disagrees with {SPARSEEHR_KEY}.{key}={ours!r}")
        if config.padded_vocab_size != values["vocab_size"]:
            raise ConversionError(
                f"config.json vocab_size {values['vocab_size']} != padded vocabulary {config.padded_vocab_size}"
            )
    else:
        # A foreign Qwen2-MoE config: its vocab_size is taken as already padded.
        config = ModelConfig(
            name="from_hf", vocab_size=values["vocab_size"], vocab_size_divisible_by=1, **derived
        )
    if shared_expert_gate is not None:
        config = config.replace(shared_expert_gate=shared_expert_gate)
    return config
