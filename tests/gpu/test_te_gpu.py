"""Transformer Engine on a GPU: TE spec vs local spec parity, a bf16 step, an FP8 step.

Skipped without CUDA and Transformer Engine. Run on a GPU machine (docker/ image) with
`pytest tests/gpu -m gpu`; record results in docs/benchmarks.md.
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


def _build(single_process_world, *, impl: str, precision: str = "fp32", seed: int = 1234):
    from sparseehr_mcore.config import ModelConfig, ParallelConfig
    from sparseehr_mcore.distributed import seed_everything
    from sparseehr_mcore.model.builder import build_model

    config = ModelConfig.from_preset("tiny", transformer_impl=impl, seq_length=128)
    seed_everything(seed)
    return config, build_model(config, ParallelConfig(), precision=precision).cuda()


def _batch(config, batch_size: int = 4):
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, config.vocab_size, (batch_size, config.seq_length + 1), generator=generator).cuda()
    positions = torch.arange(config.seq_length, device="cuda").expand(batch_size, -1)
    return tokens[:, :-1], positions, tokens[:, 1:]


def test_te_spec_matches_local_spec_forward(single_process_world, tmp_path):
    from sparseehr_mcore.checkpointing.weights import load_weights, save_weights

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    config, local = _build(single_process_world, impl="local")
    save_weights(local, tmp_path / "weights")
    _, te_model = _build(single_process_world, impl="te", seed=999)
    load_weights(te_model, tmp_path / "weights")
    tokens, positions, _ = _batch(config)
    with torch.no_grad():
        logits_local = local.eval()(tokens, positions, None)
        logits_te = te_model.eval()(tokens, positions, None)
    torch.testing.assert_close(logits_te, logits_local, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("precision", ["bf16", "fp8"])
def test_training_step(single_process_world, precision):
    if precision == "fp8":
        from transformer_engine.pytorch.fp8 import check_fp8_support

        supported, reason = check_fp8_support()
        if not supported:
            pytest.skip(f"FP8 not supported on this GPU: {reason}")
    config, model = _build(single_process_world, impl="te", precision=precision)
    tokens, positions, labels = _batch(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(5):
        optimizer.zero_grad(set_to_none=True)
        loss = model(tokens, positions, None, labels=labels).float().mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]
