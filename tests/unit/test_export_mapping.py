"""The declared Megatron-Core <-> Qwen2-MoE mapping table, on real tiny-model state dicts."""

from __future__ import annotations

import pytest
import torch

from sparseehr_mcore.export.kinds import ConversionError
from sparseehr_mcore.export.mapping import PARAMETER_MAP, hf_to_mcore, mcore_to_hf


def local_state(model) -> dict[str, torch.Tensor]:
    return {k: v for k, v in model.state_dict().items() if not k.endswith("_extra_state")}


def as_transformer_engine_names(state: dict[str, torch.Tensor], dense_layers: int) -> dict:
    """The local state renamed as the TE spec names it: norms fused into the following linear
    (pre-MLP only in dense layers; MoE layers keep `pre_mlp_layernorm`), plus `_extra_state` keys."""
    renamed = {}
    for name, tensor in state.items():
        layer = int(name.split(".")[2]) if name.startswith("decoder.layers.") else None
        if name.endswith("input_layernorm.weight"):
            name = name.replace("input_layernorm.weight", "self_attention.linear_qkv.layer_norm_weight")
        elif name.endswith("pre_mlp_layernorm.weight") and layer < dense_layers:
            name = name.replace("pre_mlp_layernorm.weight", "mlp.linear_fc1.layer_norm_weight")
        renamed[name] = tensor
        if name.endswith("linear_fc1.weight") or name.endswith("linear_qkv.weight"):
            renamed[name.rsplit(".", 1)[0] + "._extra_state"] = None
    return renamed


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"shared_expert_gate": True, "qkv_bias": True},
        {"tie_embeddings": False, "dense_prefix_layers": 0, "router_topk": 2},
        {"num_query_groups": 1, "kv_channels": 8},
    ],
    ids=["default", "gated_bias", "untied_all_moe_top2", "mqa_head_dim"],
)
def test_round_trip_is_exact(build_tiny, overrides):
    config, model = build_tiny(**overrides)
    state = local_state(model)
    hf = mcore_to_hf(state, config)
    assert list(hf) == sorted(hf)
    assert ("lm_head.weight" in hf) == (not config.tie_embeddings)
    back = hf_to_mcore(hf, config)
    assert sorted(back) == sorted(state)
    for name in state:
        assert torch.equal(back[name], state[name]), name


def test_qkv_split_follows_query_groups(build_tiny):
    config, model = build_tiny()  # 4 heads, 2 groups, head dim 16
    state = local_state(model)
    fused = state["decoder.layers.0.self_attention.linear_qkv.weight"]
    hf = mcore_to_hf(state, config)
    head = config.head_dim
    # Group g holds rows [q(2 heads), k, v] of head_dim each.
    for group in range(2):
        base = group * 4 * head
        q_rows = hf["model.layers.0.self_attn.q_proj.weight"][group * 2 * head : (group + 1) * 2 * head]
        assert torch.equal(q_rows, fused[base : base + 2 * head])
        assert torch.equal(hf["model.layers.0.self_attn.k_proj.weight"][group * head : (group + 1) * head], fused[base + 2 * head : base + 3 * head])
        assert torch.equal(hf["model.layers.0.self_attn.v_proj.weight"][group * head : (group + 1) * head], fused[base + 3 * head : base + 4 * head])
    assert not hf["model.layers.0.self_attn.q_proj.bias"].any()


def test_ungated_shared_expert_is_zero_gate_and_doubled_down(build_tiny):
    config, model = build_tiny()
    state = local_state(model)
    hf = mcore_to_hf(state, config)
    layer = config.dense_prefix_layers
    assert not hf[f"model.layers.{layer}.mlp.shared_expert_gate.weight"].any()
    down = state[f"decoder.layers.{layer}.mlp.shared_experts.linear_fc2.weight"]
    assert torch.equal(hf[f"model.layers.{layer}.mlp.shared_expert.down_proj.weight"], 2 * down)
    hf[f"model.layers.{layer}.mlp.shared_expert_gate.weight"][0, 0] = 0.5
    with pytest.raises(ConversionError, match="non-zero shared-expert gate"):
        hf_to_mcore(hf, config)


def test_transformer_engine_names_convert_like_local_ones(build_tiny):
    config, model = build_tiny()
    state = local_state(model)
    te_state = as_transformer_engine_names(state, config.dense_prefix_layers)
    assert "decoder.layers.0.mlp.linear_fc1.layer_norm_weight" in te_state
    assert f"decoder.layers.{config.dense_prefix_layers}.pre_mlp_layernorm.weight" in te_state
    local_hf, te_hf = mcore_to_hf(state, config), mcore_to_hf(te_state, config)
    assert list(local_hf) == list(te_hf)
    assert all(torch.equal(local_hf[name], te_hf[name]) for name in local_hf)


def test_leftover_and_missing_keys_raise_with_their_names(build_tiny):
    config, model = build_tiny()
    state = local_state(model)
    with pytest.raises(ConversionError, match="decoder.layers.0.mlp.surprise.weight"):
        mcore_to_hf({**state, "decoder.layers.0.mlp.surprise.weight": torch.zeros(1)}, config)
    hf = mcore_to_hf(state, config)
    with pytest.raises(ConversionError, match="model.layers.1.mlp.extra.weight"):
        hf_to_mcore({**hf, "model.layers.1.mlp.extra.weight": torch.zeros(1)}, config)
    del hf["model.layers.2.mlp.experts.3.down_proj.weight"]
    with pytest.raises(ConversionError, match="model.layers.2.mlp.experts.3.down_proj.weight"):
        hf_to_mcore(hf, config)
    both = {**state, "decoder.layers.0.self_attention.linear_qkv.layer_norm_weight": state["decoder.layers.0.input_layernorm.weight"]}
    with pytest.raises(ConversionError, match="both aliases"):
        mcore_to_hf(both, config)


def test_table_declares_every_special_kind():
    kinds = {row.kind for row in PARAMETER_MAP}
    assert {"qkv_split", "qkv_bias_split", "glu_split", "shared_expert_down", "shared_expert_gate", "tied_output", "padded_vocab"} <= kinds
    assert any(row.scope == "expert" for row in PARAMETER_MAP)
