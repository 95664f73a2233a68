"""Hugging Face logit parity for every architectural variant the exporter maps (issue 11, item 4).

Each variant of the tiny preset gets non-zero random values where the initialiser leaves zeros or
near-constants (shared-expert gates, q/k/v biases, norms; a decisive router), is saved as a
Megatron-Core checkpoint, exported with `export_to_hf`, loaded with transformers'
`Qwen2MoeForCausalLM.from_pretrained`, and must give the Megatron-Core logits on patients tokenized
by tools/preprocess_ehr.py from a synthetic cohort (demographics prefix, day bundles, EOD).
"""

from __future__ import annotations

import shutil

import pytest
import torch

from sparseehr_mcore.checkpointing.layout import TOKENIZER_DIR, CheckpointMetadata
from sparseehr_mcore.config import ModelConfig, ParallelConfig
from hf_export_helpers import perturb_norms

VARIANTS = {
    "gated_shared_expert": dict(shared_expert_gate=True),
    "qkv_bias": dict(qkv_bias=True),
    "untied_output": dict(tie_embeddings=False),
    "top2": dict(router_topk=2),
    "all_moe_d0": dict(dense_prefix_layers=0),
    "all_at_once": dict(shared_expert_gate=True, qkv_bias=True, tie_embeddings=False, router_topk=2, dense_prefix_layers=0),
}
SEQ_LENGTH = 64
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def patients(synthetic_preprocessed):
    """Tokenizer folder, vocabulary size and the four longest training patients' ids (cut to SEQ_LENGTH)."""
    from sparseehr_mcore.data.indexed import open_dataset
    from sparseehr_mcore.tokenization.base import Vocabulary

    dataset = open_dataset(synthetic_preprocessed / "train")
    longest = sorted(range(len(dataset)), key=lambda i: (-len(dataset[i]), i))[:4]
    ids = [torch.as_tensor(dataset[i][:SEQ_LENGTH].astype("int64")) for i in longest]
    vocabulary = Vocabulary.load(synthetic_preprocessed / "tokenizer" / "vocab.json")
    assert all(int(patient.max()) < len(vocabulary) for patient in ids)
    return synthetic_preprocessed / "tokenizer", len(vocabulary), ids


def randomize_variant_parameters(model: torch.nn.Module, *, seed: int = 11) -> None:
    """Values that make a dropped, swapped or mis-scaled tensor show in the logits: random norms,
    shared-expert gates and q/k/v biases (initialised to 1, 0 or near 0), and router weights large
    enough that top-k choices are far from ties."""
    perturb_norms(model, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    scales = {"shared_experts.gate_weight": 0.3, "linear_qkv.bias": 0.5, "router.weight": 0.3}
    with torch.no_grad():
        for name, param in model.named_parameters():
            for suffix, scale in scales.items():
                if name.endswith(suffix):
                    param.copy_(scale * torch.randn(param.shape, generator=generator))


def export_variant(root, *, config: ModelConfig, tokenizer_dir):
    """Build, randomise, save and export one variant; returns our model (eval) and the HF folder."""
    from sparseehr_mcore.checkpointing.weights import save_weights
    from sparseehr_mcore.distributed import seed_everything
    from sparseehr_mcore.export.hf_qwen2_moe import export_to_hf
    from sparseehr_mcore.model.builder import build_model

    seed_everything(1234)
    model = build_model(config, ParallelConfig())
    randomize_variant_parameters(model)
    checkpoint = root / "ckpt"
    shutil.copytree(tokenizer_dir, checkpoint / TOKENIZER_DIR)
    metadata = CheckpointMetadata(model=config, parallel=ParallelConfig(), iteration=1, kind="weights")
    save_weights(model, checkpoint, metadata=metadata)
    return model.eval(), export_to_hf(checkpoint, root / "hf")


def load_hf(hf_dir):
    from transformers import Qwen2MoeForCausalLM

    model, loading_info = Qwen2MoeForCausalLM.from_pretrained(hf_dir, output_loading_info=True, dtype=torch.float32)
    assert all(not keys for keys in loading_info.values()), loading_info
    return model.eval()


def max_logit_difference(ours: torch.nn.Module, theirs: torch.nn.Module, patients: list[torch.Tensor]) -> float:
    worst = 0.0
    with torch.no_grad():
        for patient in patients:
            ours_VS = ours(patient[None], torch.arange(patient.numel())[None], None)[0]  # [S, padded V]
            theirs_VS = theirs(input_ids=patient[None]).logits[0]
            assert ours_VS.shape == theirs_VS.shape
            torch.testing.assert_close(theirs_VS, ours_VS, rtol=0.0, atol=TOLERANCE)
            worst = max(worst, (ours_VS - theirs_VS).abs().max().item())
    return worst


def check_the_variant_is_exported(variant: str, config: ModelConfig, hf) -> None:
    """The feature under test is really in the exported model (not a default in disguise)."""
    layer = next(i for i, kind in enumerate(config.layer_pattern) if kind == 1)
    hf_mlp = hf.model.layers[layer].mlp
    if config.shared_expert_gate:
        assert hf_mlp.shared_expert_gate.weight.abs().min() > 0
    if config.qkv_bias:
        attention = hf.model.layers[0].self_attn
        assert all(bias.abs().min() > 0 for bias in (attention.q_proj.bias, attention.k_proj.bias, attention.v_proj.bias))
    # transformers 5 loads a present lm_head.weight whatever the flag; transformers 4 ties by it.
    assert hf.config.tie_word_embeddings == config.tie_embeddings
    assert (hf.lm_head.weight.data_ptr() == hf.model.embed_tokens.weight.data_ptr()) == config.tie_embeddings
    if not config.tie_embeddings:
        assert not torch.equal(hf.lm_head.weight, hf.model.embed_tokens.weight)
    assert hf.config.num_experts_per_tok == config.router_topk and hf.config.norm_topk_prob is False
    assert hf.config.mlp_only_layers == list(range(config.dense_prefix_layers))
    assert type(hf.model.layers[0].mlp).__name__ == ("Qwen2MoeSparseMoeBlock" if config.dense_prefix_layers == 0 else "Qwen2MoeMLP")


@pytest.mark.parametrize("variant", list(VARIANTS), ids=list(VARIANTS))
def test_variant_logits_match_transformers(variant, patients, tmp_path, single_process_world):
    tokenizer_dir, vocab_size, ids = patients
    config = ModelConfig.from_preset(
        "tiny", name=f"tiny-{variant}", vocab_size=vocab_size, seq_length=SEQ_LENGTH, rotary_base=50000.0, **VARIANTS[variant]
    )
    ours, hf_dir = export_variant(tmp_path, config=config, tokenizer_dir=tokenizer_dir)
    hf = load_hf(hf_dir)
    check_the_variant_is_exported(variant, config, hf)
    worst = max_logit_difference(ours, hf, ids)
    print(f"{variant}: max |logit difference| {worst:.3e} over {sum(p.numel() for p in ids)} positions")
