"""bf16 training on CPU through Megatron-Core's mixed-precision optimizer: loaded weights reach its
fp32 main parameters, so the first step starts from them and not from the random init."""

from __future__ import annotations

import pytest
import torch

from sparseehr_mcore.checkpointing.layout import CheckpointMetadata
from sparseehr_mcore.checkpointing.weights import save_weights
from sparseehr_mcore.config import ModelConfig, ParallelConfig
from sparseehr_mcore.config.train import TrainConfig
from sparseehr_mcore.distributed import seed_everything
from sparseehr_mcore.model.builder import build_model
from sparseehr_mcore.training.checkpoint import (
    TrainingState,
    load_training_checkpoint,
    save_training_checkpoint,
)
from sparseehr_mcore.training.stack import build_training_stack, train_step

SEQ = 16
MODEL = ModelConfig.from_preset("tiny", seq_length=SEQ)
PARALLEL = ParallelConfig()


pytestmark = pytest.mark.usefixtures("fresh_aux_loss_scale")


def bf16_stack(seed: int, *, lr: float):
    seed_everything(seed)
    model = build_model(MODEL, PARALLEL, precision="bf16", per_token_loss=True)
    train = TrainConfig(lr=lr, min_lr=0.0, warmup_iters=0, train_iters=10, clip_grad=1.0)
    return build_training_stack(model, train, precision="bf16")


def batches(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    while True:
        ids = torch.randint(5, MODEL.vocab_size, (2, SEQ + 1), generator=generator)
        yield {"tokens": ids[:, :-1], "labels": ids[:, 1:], "loss_mask": torch.ones(2, SEQ),
               "position_ids": torch.arange(SEQ).expand(2, -1)}  # fmt: skip


def step(stack, data) -> None:
    train_step(stack, data, num_microbatches=1, micro_batch_size=2, seq_length=SEQ)


def weights(stack) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in stack.model.module.named_parameters()}


def main_params(stack) -> dict[str, torch.Tensor]:
    """The optimizer's fp32 main copy of each bf16 parameter (Megatron-Core sets `param.main_param`)."""
    return {name: p.main_param for name, p in stack.model.module.named_parameters() if hasattr(p, "main_param")}


def save_source_checkpoint(tmp_path, kind: str) -> dict[str, torch.Tensor]:
    """A checkpoint of a trained bf16 model (weights only, as an HF import writes, or a training
    checkpoint); returns its weights."""
    source = bf16_stack(1, lr=1e-2)
    data = batches(1)
    for _ in range(2):
        step(source, data)
    if kind == "weights":
        save_weights(source.model.module, tmp_path / "ckpt",
                     metadata=CheckpointMetadata(model=MODEL, parallel=PARALLEL, iteration=2, kind="weights"))  # fmt: skip
        directory = tmp_path / "ckpt"
    else:
        directory = save_training_checkpoint(
            tmp_path / "run", state=TrainingState(iteration=2, consumed_train_samples=4), model=source.model,
            optimizer=source.optimizer, scheduler=source.scheduler, model_config=MODEL, parallel=PARALLEL,
            tokenizer_dir=None, keep_last=0,
        )  # fmt: skip
    return weights(source), directory


def load(stack, directory, *, load_optimizer: bool) -> TrainingState:
    return load_training_checkpoint(
        directory, model=stack.model, optimizer=stack.optimizer, scheduler=stack.scheduler,
        model_config=MODEL, parallel=PARALLEL, load_optimizer=load_optimizer, log=lambda text: None,
    )  # fmt: skip


@pytest.mark.parametrize("kind", ["weights", "training"])
def test_weights_only_load_survives_the_first_bf16_step(tmp_path, single_process_world, kind):
    loaded, directory = save_source_checkpoint(tmp_path, kind)
    target = bf16_stack(2, lr=0.0)  # another init; a zero learning rate changes nothing by itself
    assert main_params(target), "the bf16 stack should hold fp32 main parameters"
    assert next(target.model.module.parameters()).dtype == torch.bfloat16
    assert load(target, directory, load_optimizer=False) == TrainingState()

    for name, main in main_params(target).items():
        assert main.dtype == torch.float32
        assert torch.equal(main, loaded[name].float()), f"{name}: main parameter is not the loaded weight"
    step(target, batches())
    for name, tensor in weights(target).items():
        assert torch.equal(tensor, loaded[name]), f"{name}: the step replaced the loaded weight"


def test_full_bf16_resume_restores_the_fp32_main_parameters(tmp_path, single_process_world):
    source = bf16_stack(1, lr=1e-2)
    data = batches(1)
    for _ in range(2):
        step(source, data)
    directory = save_training_checkpoint(
        tmp_path / "run", state=TrainingState(iteration=2, consumed_train_samples=4), model=source.model,
        optimizer=source.optimizer, scheduler=source.scheduler, model_config=MODEL, parallel=PARALLEL,
        tokenizer_dir=None, keep_last=0,
    )  # fmt: skip
    resumed = bf16_stack(2, lr=1e-2)
    assert load(resumed, directory, load_optimizer=True).iteration == 2
    saved_main = main_params(source)
    for name, main in main_params(resumed).items():
        # The exact fp32 values, finer than the bf16 weights they round to.
        assert torch.equal(main, saved_main[name]), name
    # The next step, on the same batch, continues exactly.
    replay = batches(1)
    for _ in range(2):
        next(replay)
    step(source, data)
    step(resumed, replay)
    for name, tensor in weights(resumed).items():
        assert torch.equal(tensor, weights(source)[name]), name
