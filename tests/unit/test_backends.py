"""Backend selection (TE vs local), silent imports, and the no-TE fix."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from sparseehr_mcore.compat import have_transformer_engine
from sparseehr_mcore.config import ConfigError, ModelConfig, ParallelConfig
from sparseehr_mcore.model.specs import hybrid_layer_specs, resolve_transformer_impl
from sparseehr_mcore.model.transformer_config import to_transformer_config

TE_ON_GPU = have_transformer_engine() and torch.cuda.is_available()


@pytest.mark.skipif(TE_ON_GPU, reason="checks the error raised where TE or CUDA is missing")
def test_te_without_te_or_cuda_is_a_clear_error():
    with pytest.raises(ConfigError, match="transformer_impl='te' needs Transformer Engine and a CUDA device"):
        resolve_transformer_impl("te")


def test_auto_picks_te_only_where_it_can_run():
    assert resolve_transformer_impl("auto") == ("te" if TE_ON_GPU else "local")
    assert resolve_transformer_impl("local") == "local"


def test_fp8_needs_transformer_engine():
    with pytest.raises(ConfigError, match="precision='fp8' needs transformer_impl='te'"):
        to_transformer_config(ModelConfig.from_preset("tiny"), ParallelConfig(), precision="fp8", transformer_impl="local")
    with pytest.raises(ConfigError, match="precision must be one of fp32, bf16, fp8"):
        to_transformer_config(ModelConfig.from_preset("tiny"), ParallelConfig(), precision="fp16")


def test_transformer_config_carries_the_hybrid_pattern_and_router_choices():
    model = ModelConfig.from_preset("paper")
    config = to_transformer_config(model, ParallelConfig(), transformer_impl="local")
    assert config.moe_layer_freq == [0, 0, 0, 0] + [1] * 12  # a list, never an integer frequency
    assert config.moe_router_pre_softmax and config.moe_router_topk == 1
    assert config.moe_aux_loss_coeff == model.aux_loss_coeff > 0
    assert config.moe_shared_expert_intermediate_size == 1536 and not config.moe_shared_expert_gate
    assert config.num_query_groups == 2 and config.kv_channels == 128


def test_local_spec_uses_a_sequence_parallel_capable_norm():
    from sparseehr_mcore.model.norms import SequenceParallelTorchNorm

    specs = hybrid_layer_specs(ModelConfig.from_preset("tiny"), transformer_impl="local")
    assert [spec.submodules.mlp.module.__name__ for spec in specs] == ["MLP", "MLP", "MoELayer", "MoELayer"]
    assert all(spec.submodules.input_layernorm is SequenceParallelTorchNorm for spec in specs)


def test_importing_the_package_prints_nothing():
    code = (
        "import sparseehr_mcore, sparseehr_mcore.config, sparseehr_mcore.model.builder, "
        "sparseehr_mcore.distributed, sparseehr_mcore.checkpointing.weights, sparseehr_mcore.model.introspect"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert (done.stdout, done.stderr) == ("", "")


def test_local_checkpoint_keys_follow_the_te_layout(build_tiny):
    """Local checkpoints name norms as the TE spec does, so they load under TE and back."""
    config, model = build_tiny()
    keys = {name: tensor.key for name, tensor in model.sharded_state_dict().items() if "layernorm" in name}
    assert keys["decoder.layers.0.input_layernorm.weight"] == "decoder.layers.0.self_attention.linear_qkv.layer_norm_weight"
    assert keys["decoder.layers.0.pre_mlp_layernorm.weight"] == "decoder.layers.0.mlp.linear_fc1.layer_norm_weight"
    # TE's MoE layers keep a separate pre-MLP norm; so must the local MoE layers' checkpoints.
    assert keys["decoder.layers.2.pre_mlp_layernorm.weight"] == "decoder.layers.2.pre_mlp_layernorm.weight"


def test_cpu_compat_leaves_other_libraries_torch_alone(single_process_world, tmp_path):
    """The CUDA-on-CPU shim reaches Megatron-Core's modules only: transformers, loading a model on
    the meta device after it, must still compute its RoPE buffer (a process-wide patch of torch's
    factories once left it as uninitialised memory, silently)."""
    import megatron.core.pipeline_parallel.schedules as schedules
    from transformers import AutoModelForCausalLM, Qwen2MoeConfig, Qwen2MoeForCausalLM

    assert not hasattr(torch.zeros, "__wrapped__")
    if not torch.cuda.is_available():
        assert schedules.torch is not torch and schedules.torch.zeros(1, device="cuda").device.type == "cpu"
    config = Qwen2MoeConfig(
        vocab_size=64, hidden_size=32, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, moe_intermediate_size=16, shared_expert_intermediate_size=16, num_experts=2,
        num_experts_per_tok=1,
    )  # fmt: skip
    Qwen2MoeForCausalLM(config).save_pretrained(tmp_path)
    inv_freq = AutoModelForCausalLM.from_pretrained(tmp_path).model.rotary_emb.inv_freq
    head_dim = 32 // 2
    expected = 1.0 / (10000.0 ** (torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim))
    torch.testing.assert_close(inv_freq, expected)
