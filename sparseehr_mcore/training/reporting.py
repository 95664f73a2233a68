"""What the loop reports: the start-up line, and per logging window the training metrics (losses,
aux losses, learning rate, throughput, FLOP utilisation, expert shares), and validation results.

The values themselves are computed in `metrics`; this module decides when they are taken and
where they go (console line, tensorboard, metrics.jsonl through `run_logs.RunLogger`).
"""

from __future__ import annotations

import math
import time

import torch
import torch.distributed as dist
from megatron.core import parallel_state
from megatron.core.transformer.moe.moe_utils import (
    clear_aux_losses_tracker,
    get_moe_layer_wise_logging_tracker,
    reduce_aux_losses_tracker_across_ranks,
)

from sparseehr_mcore.model.accounting import count_parameters, flops_per_token
from sparseehr_mcore.training.metrics import ExpertUsage, format_step_line, measure_matmul_peak, step_report
from sparseehr_mcore.training.setup import RunParts
from sparseehr_mcore.training.stack import StepResult


def aux_losses_since_last_call(*, forward_passes: int, num_layers: int) -> dict[str, float]:
    """The MoE auxiliary losses (before their coefficients) since the last call, averaged over MoE
    layers and training forward passes and reduced across ranks; resets Megatron-Core's tracker,
    which sums them per layer (validation passes add nothing: routers log only when training)."""
    tracker = get_moe_layer_wise_logging_tracker()
    names = sorted(tracker)
    pipeline_group = parallel_state.get_pipeline_model_parallel_group()
    if dist.get_world_size(pipeline_group) > 1:
        # A stage without MoE layers has no tracker entries, yet the reduction runs over all stages.
        per_stage: list[list[str]] = [None] * dist.get_world_size(pipeline_group)
        dist.all_gather_object(per_stage, names, group=pipeline_group)
        names = sorted(set().union(*per_stage))
        device = "cuda" if torch.cuda.is_available() else "cpu"  # where NCCL or gloo reduce it
        for name in names:
            tracker.setdefault(name, {"values": torch.zeros(num_layers, device=device)})
    reduce_aux_losses_tracker_across_ranks(track_names=names)
    out = {}
    for name, entry in tracker.items():
        per_layer = entry["values"].float() / forward_passes
        moe_layers = per_layer[per_layer != 0]
        out[name] = float(moe_layers.mean()) if moe_layers.numel() else 0.0
    clear_aux_losses_tracker()
    return out


class StepReporter:
    """Reports the training steps of each logging window, and validation results."""

    def __init__(self, parts: RunParts) -> None:
        """Hook the routers, measure this device's matmul peak and log the run's start-up line."""
        self.parts = parts
        run = parts.run
        self.usage = ExpertUsage(parts.stack.model, run.model.num_experts)
        self.flops_per_sequence = flops_per_token(run.model)["training"] * run.model.seq_length
        device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
        self.peak = measure_matmul_peak(device=device, dtype=parts.stack.model.config.params_dtype)
        counts = count_parameters(run.model)
        parts.log(
            f"model {run.model.name}: {counts.total:,} parameters, {counts.active:,} active per token; "
            f"layout TP={run.parallel.tp} PP={run.parallel.pp} EP={run.parallel.ep} DP={parts.place.dp_size}; "
            f"{parts.num_microbatches} micro-batches of {run.train.micro_batch_size} per step; "
            f"precision {parts.precision}; matmul peak {self.peak / 1e9:,.1f} GFLOP/s per device"
        )
        self._start_window()

    def _start_window(self) -> None:
        self.window_start, self.window_steps = time.perf_counter(), 0

    def step_done(self) -> None:
        self.window_steps += 1

    def report_training(self, *, iteration: int, step: StepResult) -> None:
        """Log the window's metrics at `iteration` (the last step's loss; aux losses, shares and
        throughput over the window), then open the next window. A collective over the layout."""
        run, parts = self.parts.run, self.parts
        aux = aux_losses_since_last_call(
            forward_passes=parts.num_microbatches * self.window_steps, num_layers=run.model.num_layers
        )
        elapsed = time.perf_counter() - self.window_start
        sequences = self.window_steps * run.train.global_batch_size
        values = step_report(
            step,
            aux_losses=aux,
            expert_shares=self.usage.collect(),
            lr=parts.stack.optimizer.param_groups[0]["lr"],
            tokens_per_s=sequences * run.model.seq_length / elapsed,
            mfu=sequences * self.flops_per_sequence / elapsed / (self.peak * parts.place.world_size),
        )
        parts.logger.scalars(iteration, values)
        parts.log(format_step_line(iteration, run.train.train_iters, values, skipped=step.update_skipped))
        self._start_window()

    def report_validation(self, *, iteration: int, loss: float) -> None:
        perplexity = math.exp(min(loss, 50.0))  # capped: an untrained model's loss can overflow exp
        self.parts.logger.scalars(iteration, {"valid/lm_loss": loss, "valid/ppl": perplexity})
        self.parts.log(f"validation at step {iteration}: loss {loss:.4f} ppl {perplexity:.2f}")
