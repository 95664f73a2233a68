"""The local spec's SDPA core attention equals Megatron-Core's unfused `DotProductAttention` on the same
q/k/v: forward and gradients in fp32, causal, GQA, a given mask, softmax scale, heads per
tensor-parallel partition; dropout only in training; the spec and the built model use it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from sparseehr_mcore.config import ModelConfig, ParallelConfig


@pytest.fixture
def megatron_attention(single_process_world):
    """Build the unfused reference and ours from one TransformerConfig (fp32)."""
    from sparseehr_mcore.compat import apply_compat
    from sparseehr_mcore.model.attention import SDPADotProductAttention
    from sparseehr_mcore.model.transformer_config import to_transformer_config

    from megatron.core.transformer.dot_product_attention import DotProductAttention
    from megatron.core.transformer.enums import AttnMaskType

    apply_compat()

    def build(*, tp: int = 1, layer_number: int = 1, mask_type=AttnMaskType.causal, softmax_scale=None, **overrides):
        config = to_transformer_config(ModelConfig.from_preset("tiny", **overrides), ParallelConfig())
        # DotProductAttention and ours read only tp.size() from the group collection: a stand-in of
        # size `tp` gives this process the heads of one of `tp` partitions.
        groups = SimpleNamespace(tp=SimpleNamespace(size=lambda: tp)) if tp > 1 else None
        kwargs = dict(layer_number=layer_number, attn_mask_type=mask_type, attention_type="self",
                      softmax_scale=softmax_scale, pg_collection=groups)  # fmt: skip
        return config, DotProductAttention(config, **kwargs), SDPADotProductAttention(config, **kwargs)

    return build


def qkv(seq: int, batch: int, heads: int, groups: int, head_dim: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    shapes = [(seq, batch, heads, head_dim), (seq, batch, groups, head_dim), (seq, batch, groups, head_dim)]
    return [torch.randn(shape, generator=generator).requires_grad_() for shape in shapes]


def document_mask(seq: int, boundaries: list[list[int]]) -> torch.Tensor:
    """Megatron's convention ([b, 1, s, s], True = masked): causal, and no attention across the
    document boundaries of each sequence (what `reset_attention_mask` builds for packed sequences)."""
    masks = []
    for starts in boundaries:
        document = torch.zeros(seq, dtype=torch.long)
        for start in starts:
            document[start:] += 1
        visible = torch.ones(seq, seq, dtype=torch.bool).tril() & (document[:, None] == document[None, :])
        masks.append(~visible)
    return torch.stack(masks)[:, None]


def forward_and_grads(attention, query, key, value, mask):
    output = attention(query, key, value, mask)
    # A fixed random cotangent, so that every output element weighs differently in the gradients.
    cotangent = torch.randn(output.shape, generator=torch.Generator().manual_seed(1))
    grads = torch.autograd.grad(output, (query, key, value), cotangent)
    return output, grads


CASES = {
    "gqa_causal": dict(overrides={}, mask=None),  # tiny: 4 heads, 2 query groups, head dim 16
    "mha_causal": dict(overrides={"num_query_groups": 4}, mask=None),
    "mqa_causal": dict(overrides={"num_query_groups": 1}, mask=None),
    "gqa_document_mask": dict(overrides={}, mask=[[7, 20], [33]]),
    "mha_document_mask": dict(overrides={"num_query_groups": 4}, mask=[[], [5, 6, 40]]),
    "head_dim_24": dict(overrides={"kv_channels": 24}, mask=None),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_sdpa_equals_unfused_forward_and_gradients(megatron_attention, case):
    config, unfused, sdpa = megatron_attention(**CASES[case]["overrides"])
    seq, batch = 48, 2
    query, key, value = qkv(seq, batch, config.num_attention_heads, config.num_query_groups, config.kv_channels)
    boundaries = CASES[case]["mask"]
    mask = None if boundaries is None else document_mask(seq, boundaries)
    expected, expected_grads = forward_and_grads(unfused, query, key, value, mask)
    actual, actual_grads = forward_and_grads(sdpa, query, key, value, mask)
    assert actual.shape == expected.shape == (seq, batch, config.num_attention_heads * config.kv_channels)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
    for name, got, want in zip("qkv", actual_grads, expected_grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5, msg=lambda m: f"d{name}: {m}")


def test_a_given_mask_is_applied(megatron_attention):
    """A mask that changes the result must change ours the same way (not fall back to causal)."""
    config, unfused, sdpa = megatron_attention()
    seq = 32
    query, key, value = qkv(seq, 2, config.num_attention_heads, config.num_query_groups, config.kv_channels)
    mask = document_mask(seq, [[10], [3, 17]])
    with torch.no_grad():
        causal_only = sdpa(query, key, value, None)
        masked = sdpa(query, key, value, mask)
        torch.testing.assert_close(masked, unfused(query, key, value, mask), rtol=1e-5, atol=1e-5)
    assert (masked - causal_only).abs().max() > 1e-2


def test_sdpa_equals_unfused_per_tensor_parallel_partition(megatron_attention):
    """Under TP=2 each rank holds half the heads and half the query groups."""
    config, unfused, sdpa = megatron_attention(tp=2, num_attention_heads=8, num_query_groups=2, kv_channels=8)
    assert sdpa.num_attention_heads_per_partition == unfused.num_attention_heads_per_partition == 4
    assert sdpa.num_query_groups_per_partition == unfused.num_query_groups_per_partition == 1
    query, key, value = qkv(40, 3, 4, 1, 8)
    expected, expected_grads = forward_and_grads(unfused, query, key, value, None)
    actual, actual_grads = forward_and_grads(sdpa, query, key, value, None)
    assert actual.shape == (40, 3, 4 * 8)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
    for got, want in zip(actual_grads, expected_grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scaling", ["given_scale", "query_key_layer_scaling"])
def test_softmax_scale_follows_megatron(megatron_attention, scaling):
    if scaling == "given_scale":
        config, unfused, sdpa = megatron_attention(softmax_scale=0.37)
    else:  # Megatron divides the scores by the layer number and multiplies them back in the softmax
        config, unfused, sdpa = megatron_attention(layer_number=3)
        config.apply_query_key_layer_scaling = True
        from megatron.core.transformer.dot_product_attention import DotProductAttention
        from megatron.core.transformer.enums import AttnMaskType

        config.attention_softmax_in_fp32 = True
        unfused = DotProductAttention(config, layer_number=3, attn_mask_type=AttnMaskType.causal, attention_type="self")
        assert unfused.softmax_scale != sdpa.softmax_scale  # scaled down there, back up in its softmax
    query, key, value = qkv(24, 2, config.num_attention_heads, config.num_query_groups, config.kv_channels)
    with torch.no_grad():
        torch.testing.assert_close(sdpa(query, key, value, None), unfused(query, key, value, None), rtol=1e-5, atol=1e-5)


def test_no_mask_type_attends_everywhere_and_one_query_sees_its_cache(megatron_attention):
    from megatron.core.transformer.enums import AttnMaskType

    config, unfused, sdpa = megatron_attention(mask_type=AttnMaskType.no_mask)
    query, key, value = qkv(16, 2, config.num_attention_heads, config.num_query_groups, config.kv_channels)
    with torch.no_grad():
        torch.testing.assert_close(sdpa(query, key, value, None), unfused(query, key, value, None), rtol=1e-5, atol=1e-5)
    # Decoding: one causal query against 16 cached keys attends to all of them.
    config, unfused, sdpa = megatron_attention()
    with torch.no_grad():
        expected = unfused(query[-1:], key, value, None)
        torch.testing.assert_close(sdpa(query[-1:], key, value, None), expected, rtol=1e-5, atol=1e-5)
        no_mask = sdpa(query[-1:], key, value, None, attn_mask_type=AttnMaskType.no_mask)
        torch.testing.assert_close(no_mask, expected, rtol=1e-5, atol=1e-5)


def test_dropout_only_in_training_unbiased_and_reproducible(megatron_attention):
    from megatron.core.tensor_parallel.random import model_parallel_cuda_manual_seed

    config, unfused, sdpa = megatron_attention(attention_dropout=0.5)
    seq, batch, heads = 64, 8, config.num_attention_heads
    # Equal scores (q = 0) make every visible key weigh 1/n; values of one make the output 1 exactly
    # without dropout, and 1 in expectation with it.
    query = torch.zeros(seq, batch, heads, config.kv_channels)
    key = torch.randn(seq, batch, config.num_query_groups, config.kv_channels)
    value = torch.ones(seq, batch, config.num_query_groups, config.kv_channels)
    sdpa.eval()
    torch.testing.assert_close(sdpa(query, key, value, None), torch.ones(seq, batch, heads * config.kv_channels))
    sdpa.train()
    model_parallel_cuda_manual_seed(5)
    first = sdpa(query, key, value, None)
    model_parallel_cuda_manual_seed(5)
    again = sdpa(query, key, value, None)
    assert torch.equal(first, again)  # drawn from Megatron's tracked tensor-parallel generator
    assert (first - 1).abs().max() > 0.1
    assert abs(first.mean().item() - 1) < 0.02


def test_refuses_what_it_does_not_implement(megatron_attention):
    from megatron.core.packed_seq_params import PackedSeqParams

    config, _, sdpa = megatron_attention()
    query, key, value = qkv(8, 1, config.num_attention_heads, config.num_query_groups, config.kv_channels)
    with pytest.raises(ValueError, match="packed sequences"):
        sdpa(query, key, value, None, packed_seq_params=PackedSeqParams())
    config.softmax_type = "off-by-one"
    from sparseehr_mcore.model.attention import SDPADotProductAttention
    from megatron.core.transformer.enums import AttnMaskType

    with pytest.raises(ValueError, match="softmax_type='off-by-one'"):
        SDPADotProductAttention(config, layer_number=1, attn_mask_type=AttnMaskType.causal, attention_type="self")


def test_local_spec_uses_sdpa_by_default_and_unfused_on_request():
    from sparseehr_mcore.model.attention import SDPADotProductAttention
    from sparseehr_mcore.model.specs import hybrid_layer_specs

    from megatron.core.transformer.dot_product_attention import DotProductAttention

    model = ModelConfig.from_preset("tiny")
    for local_attention, expected in (("sdpa", SDPADotProductAttention), ("unfused", DotProductAttention)):
        specs = hybrid_layer_specs(model, transformer_impl="local", local_attention=local_attention)
        assert all(spec.submodules.self_attention.submodules.core_attention is expected for spec in specs)
    assert all(
        spec.submodules.self_attention.submodules.core_attention is SDPADotProductAttention
        for spec in hybrid_layer_specs(model, transformer_impl="local")
    )
    with pytest.raises(ValueError, match="local_attention must be one of"):
        hybrid_layer_specs(model, transformer_impl="local", local_attention="flash")


def test_whole_model_is_the_same_with_either_attention(single_process_world):
    """Same seed, same weights (the core attention has none), same loss and gradients."""
    from sparseehr_mcore.distributed import seed_everything
    from sparseehr_mcore.model.attention import SDPADotProductAttention
    from sparseehr_mcore.model.builder import build_model

    config = ModelConfig.from_preset("tiny", seq_length=32)
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, config.vocab_size, (2, config.seq_length + 1), generator=generator)
    positions = torch.arange(config.seq_length).expand(2, -1)
    results = {}
    for local_attention in ("unfused", "sdpa"):
        seed_everything(1234)
        model = build_model(config, ParallelConfig(), local_attention=local_attention)
        loss = model(tokens[:, :-1], positions, None, labels=tokens[:, 1:]).mean()
        loss.backward()
        results[local_attention] = (loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}, model)
    assert isinstance(results["sdpa"][2].decoder.layers[0].self_attention.core_attention, SDPADotProductAttention)
    assert sorted(results["sdpa"][2].state_dict()) == sorted(results["unfused"][2].state_dict())
    torch.testing.assert_close(results["sdpa"][0], results["unfused"][0], rtol=1e-6, atol=1e-6)
    for name, grad in results["unfused"][1].items():
        torch.testing.assert_close(results["sdpa"][1][name], grad, rtol=1e-4, atol=1e-6, msg=lambda m: f"{name}: {m}")
