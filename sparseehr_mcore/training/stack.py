"""Megatron-Core's training stack around the model: DDP wrapper, optimizer, LR schedule, one step.

Gradients are averaged per target token over the whole global batch (`calculate_per_token_loss`),
so micro-batches with more padding weigh less, exactly as if the batch were one sequence of tokens.
The MoE load-balancing loss is computed over the same tokens: every forward pass hands Megatron-Core
the padding mask of the positions outside the loss (see `padding_mask`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from megatron.core import parallel_state, tensor_parallel
from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig, finalize_model_grads
from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer
from megatron.core.optimizer_param_scheduler import OptimizerParamScheduler
from megatron.core.pipeline_parallel import get_forward_backward_func

from sparseehr_mcore.compat import have_cuda
from sparseehr_mcore.config.train import TrainConfig


@dataclass
class TrainingStack:
    model: DistributedDataParallel
    optimizer: object  # MegatronOptimizer or ChainedOptimizer
    scheduler: OptimizerParamScheduler


def resolve_precision(requested: str) -> str:
    """`auto` is fp32 on CPU and bf16 on GPU."""
    if requested == "auto":
        return "bf16" if have_cuda() else "fp32"
    return requested


def use_distributed_optimizer(train: TrainConfig) -> bool:
    """Megatron-Core's distributed optimizer wraps only CUDA tensors; by default it is on with CUDA
    and more than one data-parallel rank."""
    if train.distributed_optimizer is None:
        return have_cuda() and parallel_state.get_data_parallel_world_size() > 1
    return train.distributed_optimizer


def build_training_stack(gpt_model: torch.nn.Module, train: TrainConfig, *, precision: str) -> TrainingStack:
    """Wrap `gpt_model` in Megatron-Core DDP and build its optimizer and warmup + cosine schedule."""
    config = gpt_model.config
    distributed_optimizer = use_distributed_optimizer(train)
    ddp = DistributedDataParallel(
        config=config,
        ddp_config=DistributedDataParallelConfig(
            grad_reduce_in_fp32=True,
            use_distributed_optimizer=distributed_optimizer,
            overlap_grad_reduce=False,
        ),
        module=gpt_model,
    )
    config.finalize_model_grads_func = finalize_model_grads
    optimizer = get_megatron_optimizer(
        OptimizerConfig(
            optimizer="adam",
            lr=train.lr,
            min_lr=train.min_lr,
            weight_decay=train.weight_decay,
            adam_beta1=train.adam_beta1,
            adam_beta2=train.adam_beta2,
            adam_eps=train.adam_eps,
            clip_grad=train.clip_grad,
            bf16=precision in ("bf16", "fp8"),
            params_dtype=config.params_dtype,
            use_distributed_optimizer=distributed_optimizer,
        ),
        [ddp],
    )
    scheduler = OptimizerParamScheduler(
        optimizer,
        init_lr=0.0,
        max_lr=train.lr,
        min_lr=train.min_lr,
        lr_warmup_steps=train.warmup_iters,
        lr_decay_steps=train.decay_iters,
        lr_decay_style="cosine",
        start_wd=train.weight_decay,
        end_wd=train.weight_decay,
        wd_incr_steps=train.decay_iters,
        wd_incr_style="constant",
    )
    return TrainingStack(model=ddp, optimizer=optimizer, scheduler=scheduler)


def _loss_func(loss_mask: torch.Tensor, per_token_loss: torch.Tensor):
    """Summed masked loss and its token count; Megatron-Core divides by the global token count."""
    mask = loss_mask.view(-1).float()
    loss_sum = (per_token_loss.view(-1).float() * mask).sum()
    num_tokens = mask.sum().to(torch.int)
    return loss_sum, num_tokens, {"lm loss": torch.stack([loss_sum.detach().clone(), mask.sum()])}


def _on_device(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The data loader yields host tensors; the model's device is the current CUDA device, if any."""
    if not have_cuda():
        return batch
    device = torch.cuda.current_device()
    return {name: tensor.to(device, non_blocking=True) for name, tensor in batch.items()}


def padding_mask(loss_mask: torch.Tensor, model: torch.nn.Module) -> torch.Tensor:
    """Megatron-Core's MoE `padding_mask` for a micro-batch: True where a position is left out of
    the routing statistics (aux-loss token counts and normaliser, z-loss, our expert shares).

    Those are the positions outside the LM loss: right padding and the end-of-record position (whose
    target is padding). So the aux loss is normalised by exactly the LM loss's token count, and its
    effective coefficient no longer grows with the padding fraction. Padded positions are still
    dispatched to experts (Megatron-Core routes every token; without a capacity limit they take no
    place from real ones), and causal attention keeps them out of every real token's output.

    Args:
        loss_mask: [batch, seq] 1.0 where the position's prediction is trained.
        model: this stage's model (or its DDP wrapper).

    Returns:
        [batch, seq] bool, or [batch, seq / TP] on pipeline stages after the first under sequence
        parallelism: Megatron-Core 0.16 scatters the mask along the sequence only on the stage that
        embeds the tokens, so later stages get it scattered here.
    """
    mask_BS = loss_mask == 0
    gpt_model = getattr(model, "module", model)
    if not gpt_model.pre_process and gpt_model.config.sequence_parallel:
        mask_SB = tensor_parallel.scatter_to_sequence_parallel_region(mask_BS.transpose(0, 1).contiguous())
        mask_BS = mask_SB.transpose(0, 1).contiguous()
    return mask_BS


def _forward_step(data_iterator, model):
    batch = _on_device(next(data_iterator))
    output = model(
        batch["tokens"], batch["position_ids"], None, labels=batch["labels"],
        padding_mask=padding_mask(batch["loss_mask"], model),
    )  # fmt: skip
    return output, lambda per_token_loss: _loss_func(batch["loss_mask"], per_token_loss)


@dataclass
class StepResult:
    loss_sum: float  # summed over the global batch's target tokens (on the last pipeline stage)
    num_tokens: float
    grad_norm: float | None
    update_skipped: bool

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.num_tokens, 1.0)


def run_microbatches(
    model: torch.nn.Module,
    batches: Iterator[dict[str, torch.Tensor]],
    *,
    num_microbatches: int,
    micro_batch_size: int,
    seq_length: int,
    forward_only: bool,
) -> tuple[float, float]:
    """Forward (and backward) over `num_microbatches`; returns (loss sum, tokens) over data-parallel ranks."""
    results = get_forward_backward_func()(
        forward_step_func=_forward_step,
        data_iterator=batches,
        model=[model],
        num_microbatches=num_microbatches,
        seq_length=seq_length,
        micro_batch_size=micro_batch_size,
        forward_only=forward_only,
    )
    # On the accelerator where there is one: NCCL reduces device tensors only.
    totals = torch.zeros(2, dtype=torch.float64, device="cuda" if have_cuda() else "cpu")
    for result in results:  # empty except on the last pipeline stage
        totals += result["lm loss"].to(totals)
    if parallel_state.get_data_parallel_world_size() > 1:
        dist.all_reduce(totals, group=parallel_state.get_data_parallel_group())
    return float(totals[0]), float(totals[1])


def train_step(
    stack: TrainingStack, batches: Iterator[dict[str, torch.Tensor]], *, num_microbatches: int, micro_batch_size: int, seq_length: int
) -> StepResult:
    """One optimizer step over a global batch."""
    stack.model.zero_grad_buffer()
    stack.optimizer.zero_grad()
    loss_sum, num_tokens = run_microbatches(
        stack.model,
        batches,
        num_microbatches=num_microbatches,
        micro_batch_size=micro_batch_size,
        seq_length=seq_length,
        forward_only=False,
    )
    # The schedule's step s uses the learning rate of step s+1: warmup starts above zero.
    stack.scheduler.step(increment=1)
    update_successful, grad_norm, _ = stack.optimizer.step()
    return StepResult(loss_sum, num_tokens, grad_norm, not update_successful)
