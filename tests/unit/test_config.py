"""ModelConfig and ParallelConfig: presets, YAML round trips, and clear errors before any compute."""

from __future__ import annotations

import pytest

from sparseehr_mcore.config import PRESETS, ConfigError, ModelConfig, ParallelConfig


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_yaml(tmp_path, name):
    config = ModelConfig.from_preset(name)
    config.to_yaml(tmp_path / "model.yaml")
    assert ModelConfig.from_yaml(tmp_path / "model.yaml") == config


def test_paper_preset_matches_the_paper_architecture():
    config = ModelConfig.from_preset("paper")
    assert (config.num_layers, config.hidden_size, config.vocab_size, config.seq_length) == (16, 2048, 20656, 2048)
    assert config.layer_pattern == [0] * 4 + [1] * 12
    assert (config.num_experts, config.router_topk, config.router_pre_softmax) == (4, 1, True)
    assert config.shared_expert_ffn_hidden_size > 0 and not config.shared_expert_gate
    assert config.num_query_groups < config.num_attention_heads  # GQA
    assert config.aux_loss_coeff > 0


def test_yaml_with_preset_key_overrides_fields(tmp_path):
    path = tmp_path / "model.yaml"
    path.write_text("preset: paper\ndense_prefix_layers: 0\n")
    config = ModelConfig.from_yaml(path)
    assert config.dense_prefix_layers == 0 and config.layer_pattern == [1] * 16


def test_unknown_keys_are_rejected_with_a_suggestion(tmp_path):
    path = tmp_path / "model.yaml"
    path.write_text("preset: tiny\ndense_prefx_layers: 1\n")
    with pytest.raises(ConfigError, match=r"unknown ModelConfig key\(s\) 'dense_prefx_layers' \(did you mean 'dense_prefix_layers'\?\)"):
        ModelConfig.from_yaml(path)


def test_malformed_and_missing_files_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        ModelConfig.from_yaml(tmp_path / "absent.yaml")
    (tmp_path / "bad.yaml").write_text("num_layers: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        ModelConfig.from_yaml(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="unknown model preset 'huge'; available: paper, small, tiny"):
        ModelConfig.from_preset("huge")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"dense_prefix_layers": 5}, r"dense_prefix_layers \(D=5\) must be between 0 and num_layers \(4\)"),
        ({"num_query_groups": 3}, r"num_attention_heads \(4\) must be divisible by num_query_groups \(3\)"),
        ({"router_topk": 5}, r"router_topk \(5\) must be between 1 and num_experts \(4\)"),
        ({"router_pre_softmax": False}, "router_topk=1 needs router_pre_softmax=True"),
        ({"shared_expert_ffn_hidden_size": 0, "shared_expert_gate": True}, "shared_expert_gate=True needs a shared expert"),
        ({"aux_loss_type": "sinkhorn"}, "aux_loss_type must be one of aux_loss, seq_aux_loss, global_aux_loss, none"),
        ({"transformer_impl": "cuda"}, "transformer_impl must be one of auto, te, local"),
        ({"hidden_dropout": 1.5}, "hidden_dropout must be < 1"),
        ({"num_layers": 0}, "num_layers must be a positive integer"),
        ({"aux_loss_type": "none"}, "aux_loss_type='none' with aux_loss_coeff > 0"),
    ],
)
def test_invalid_model_configs_say_what_to_change(overrides, message):
    with pytest.raises(ConfigError, match=message):
        ModelConfig.from_preset("tiny", **overrides)


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        ModelConfig.from_preset("tiny", dense_prefix_layers=9, num_query_groups=3, router_topk=0)
    assert str(caught.value).count("\n  - ") == 3


def test_padded_vocab_does_not_depend_on_tensor_parallel_size():
    config = ModelConfig.from_preset("paper")
    assert config.padded_vocab_size == 20736 and config.padded_vocab_size % 128 == 0


@pytest.mark.parametrize(
    "layout, world, message",
    [
        (dict(tensor_model_parallel_size=3), 3, r"tensor parallel size 3 must divide num_attention_heads \(4\)"),
        (dict(expert_model_parallel_size=3), 3, r"expert parallel size 3 must divide num_experts \(4\)"),
        (dict(pipeline_model_parallel_size=3), 3, r"pipeline parallel size 3 must divide num_layers \(4\)"),
        (dict(tensor_model_parallel_size=2), 3, r"world size 3 is not divisible by tensor x pipeline parallel size \(2 x 1\)"),
        (dict(tensor_model_parallel_size=2, sequence_parallel=False), 2, "need sequence_parallel"),
        (dict(sequence_parallel=True), 1, "sequence_parallel needs tensor parallel size > 1"),
        (dict(expert_model_parallel_size=4), 2, r"not divisible by expert x expert-tensor parallel size \(4 x 1\)"),
    ],
)
def test_parallel_layouts_that_cannot_work_fail_before_compute(layout, world, message):
    with pytest.raises(ConfigError, match=message):
        ParallelConfig(**layout).validate(ModelConfig.from_preset("tiny"), world)


def test_tensor_parallel_must_divide_query_groups():
    model = ModelConfig.from_preset("tiny", num_attention_heads=4, num_query_groups=1)
    with pytest.raises(ConfigError, match=r"must divide num_query_groups \(1\)"):
        ParallelConfig(tensor_model_parallel_size=2).validate(model)


def test_expert_parallelism_without_moe_layers_is_rejected():
    model = ModelConfig.from_preset("tiny", dense_prefix_layers=4)
    with pytest.raises(ConfigError, match="the model has no MoE layers"):
        ParallelConfig(expert_model_parallel_size=2).validate(model, 2)


def test_negative_parallel_sizes_are_rejected():
    with pytest.raises(ConfigError, match="tensor_model_parallel_size must be an integer >= 1"):
        ParallelConfig(tensor_model_parallel_size=0)
