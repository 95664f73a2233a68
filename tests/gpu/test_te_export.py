"""A Transformer Engine model exported to Hugging Face for real (issue 11, item 4): built with
transformer_impl="te" on a GPU, saved, converted by `export_to_hf`, loaded with transformers'
`Qwen2MoeForCausalLM`, and compared on logits; its own TE-named state dict (norms fused into
`linear_qkv`/`linear_fc1`, `_extra_state` entries) must convert to the same tensors.

Skipped without CUDA and Transformer Engine: `pytest tests/gpu -m gpu` in the GPU image (docker/).
"""

from __future__ import annotations

import pytest
import torch

from sparseehr_mcore.compat import have_transformer_engine

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not (torch.cuda.is_available() and have_transformer_engine()), reason="needs CUDA and Transformer Engine"
    ),
]

VARIANTS = {
    "tiny": {},
    "gated_bias_untied_top2": dict(shared_expert_gate=True, qkv_bias=True, tie_embeddings=False, router_topk=2),
}


def _randomize(model: torch.nn.Module, seed: int = 3) -> None:
    """Random norms, gates, biases and a decisive router: a lost or swapped tensor shows in the logits."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name or name.endswith("layer_norm_weight"):
                param.add_(0.2 * torch.randn(param.shape, generator=generator).to(param))
            elif name.endswith(("shared_experts.gate_weight", "linear_qkv.bias", "router.weight")):
                param.copy_(0.3 * torch.randn(param.shape, generator=generator).to(param))


@pytest.mark.parametrize("variant", list(VARIANTS), ids=list(VARIANTS))
def test_te_checkpoint_exports_to_matching_transformers_model(single_process_world, tmp_path, variant):
    from transformers import Qwen2MoeForCausalLM

    from sparseehr_mcore.checkpointing.layout import CheckpointMetadata
    from sparseehr_mcore.checkpointing.weights import save_weights
    from sparseehr_mcore.config import ModelConfig, ParallelConfig
    from sparseehr_mcore.distributed import seed_everything
    from sparseehr_mcore.export.hf_qwen2_moe import ExportOptions, export_to_hf
    from sparseehr_mcore.export.mapping import mcore_to_hf
    from sparseehr_mcore.export.safetensors_io import read_shards
    from sparseehr_mcore.model.builder import build_model

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    config = ModelConfig.from_preset("tiny", transformer_impl="te", rotary_base=50000.0, **VARIANTS[variant])
    seed_everything(1234)
    te_model = build_model(config, ParallelConfig()).cuda()
    _randomize(te_model)
    te_state = {name: value for name, value in te_model.state_dict().items()}
    assert "decoder.layers.0.self_attention.linear_qkv.layer_norm_weight" in te_state  # TE names, for real
    assert any(name.endswith("_extra_state") for name in te_state)

    save_weights(te_model, tmp_path / "ckpt", metadata=CheckpointMetadata(model=config, parallel=ParallelConfig(), iteration=1, kind="weights"))
    hf_dir = export_to_hf(tmp_path / "ckpt", tmp_path / "hf", options=ExportOptions(require_tokenizer=False))
    exported = read_shards(hf_dir)
    # The TE-named state dict itself converts to exactly what went through the checkpoint.
    direct = mcore_to_hf({k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in te_state.items()}, config)
    assert sorted(direct) == sorted(exported)
    assert [name for name in exported if not torch.equal(direct[name], exported[name])] == []

    hf, loading_info = Qwen2MoeForCausalLM.from_pretrained(hf_dir, output_loading_info=True, dtype=torch.float32)
    assert all(not keys for keys in loading_info.values()), loading_info
    hf = hf.cuda().eval()
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, config.vocab_size, (3, config.seq_length), generator=generator).cuda()
    positions = torch.arange(config.seq_length, device="cuda").expand(3, -1)
    with torch.no_grad():
        ours = te_model.eval()(tokens, positions, None)
        theirs = hf(input_ids=tokens).logits
    print(f"{variant}: max |logit difference| TE vs transformers {(ours - theirs).abs().max().item():.3e}")
    torch.testing.assert_close(theirs, ours, rtol=1e-4, atol=1e-4)
