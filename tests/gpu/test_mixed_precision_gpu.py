"""bf16 on a GPU, without the CPU shims: a weights-only load reaches the mixed-precision optimizer's
fp32 main parameters, so a zero-learning-rate step keeps the loaded weights.

The CPU twin (`tests/unit/test_training_mixed_precision.py`) runs the same Megatron-Core optimizer
through `compat/`; this one checks the path GPU runs take. Skipped without CUDA; run with
`pytest tests/gpu -m gpu`.
"""

from __future__ import annotations

import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

SEQ = 16


def _stack(seed: int, *, lr: float):
    from sparseehr_mcore.config import ModelConfig, ParallelConfig
    from sparseehr_mcore.config.train import TrainConfig
    from sparseehr_mcore.distributed import seed_everything
    from sparseehr_mcore.model.builder import build_model
    from sparseehr_mcore.training.stack import build_training_stack

    seed_everything(seed)
    model_config = ModelConfig.from_preset("tiny", seq_length=SEQ, transformer_impl="local")
    model = build_model(model_config, ParallelConfig(), precision="bf16", per_token_loss=True)
    train = TrainConfig(lr=lr, min_lr=0.0, warmup_iters=0, train_iters=10)
    return model_config, build_training_stack(model, train, precision="bf16")


def _batches(vocab_size: int):
    """CPU batches, as the data loader yields them: the step moves them to the GPU."""
    generator = torch.Generator().manual_seed(0)
    while True:
        ids = torch.randint(5, vocab_size, (2, SEQ + 1), generator=generator)
        yield {"tokens": ids[:, :-1], "labels": ids[:, 1:], "loss_mask": torch.ones(2, SEQ),
               "position_ids": torch.arange(SEQ).expand(2, -1)}  # fmt: skip


def test_weights_only_load_survives_a_zero_lr_bf16_step(single_process_world, tmp_path):
    from sparseehr_mcore.checkpointing.layout import CheckpointMetadata
    from sparseehr_mcore.checkpointing.weights import save_weights
    from sparseehr_mcore.config import ParallelConfig
    from sparseehr_mcore.training.checkpoint import load_training_checkpoint
    from sparseehr_mcore.training.stack import train_step

    model_config, source = _stack(1, lr=1e-2)
    assert next(source.model.module.parameters()).is_cuda
    metadata = CheckpointMetadata(model=model_config, parallel=ParallelConfig(), iteration=0, kind="weights")
    save_weights(source.model.module, tmp_path / "weights", metadata=metadata)
    loaded = {name: p.detach().clone() for name, p in source.model.module.named_parameters()}

    _, target = _stack(2, lr=0.0)
    load_training_checkpoint(
        tmp_path / "weights", model=target.model, optimizer=target.optimizer, scheduler=target.scheduler,
        model_config=model_config, parallel=ParallelConfig(), load_optimizer=False, log=lambda text: None,
    )  # fmt: skip
    train_step(target, _batches(model_config.vocab_size), num_microbatches=1, micro_batch_size=2, seq_length=SEQ)
    for name, tensor in target.model.module.named_parameters():
        assert tensor.dtype == torch.bfloat16
        assert torch.equal(tensor, loaded[name]), f"{name}: the step replaced the loaded weight"
