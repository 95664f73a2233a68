"""Build one model per dense prefix D, train them round-robin on the same batches, validate each.

Everything a variant does goes through the project's training stack (`build_model`,
`build_training_stack`, `train_step`, `run_microbatches`, `ExpertUsage`); only the order of steps is
ours: one step of every variant per round, so that machine noise falls on all of them alike, with
the order rotated each round so no variant always runs right after the same other one.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from sparseehr_mcore.ablation.config import AblationConfig, base_model, variant_models
from sparseehr_mcore.ablation.memory import MemoryReading, StepPeak, resident_bytes
from sparseehr_mcore.ablation.timing import per_round_ratio
from sparseehr_mcore.config import ConfigError, ModelConfig, ParallelConfig
from sparseehr_mcore.config.train import DataConfig, TrainConfig
from sparseehr_mcore.distributed import initialize_distributed, seed_everything
from sparseehr_mcore.model.accounting import ParameterCounts, count_parameters
from sparseehr_mcore.model.builder import build_model
from sparseehr_mcore.model.specs import resolve_transformer_impl
from sparseehr_mcore.training.data import build_patient_datasets, micro_batches
from sparseehr_mcore.training.inputs import resolve_data_sources
from sparseehr_mcore.training.metrics import ExpertUsage, expert_share_std
from sparseehr_mcore.training.stack import (
    TrainingStack,
    build_training_stack,
    resolve_precision,
    run_microbatches,
    train_step,
)

# After our own modules, which import Megatron-Core once without its notes about absent TE/apex.
from megatron.core.transformer.moe.moe_utils import clear_aux_losses_tracker


@dataclass
class Variant:
    """One dense-prefix model with its training stack and what it has measured so far."""

    dense_prefix_layers: int
    model: ModelConfig
    counts: ParameterCounts
    built_parameters: int
    stack: TrainingStack
    usage: ExpertUsage
    batches: Iterator[dict[str, torch.Tensor]]
    losses: list[float] = field(default_factory=list)
    step_times: list[float] = field(default_factory=list)  # seconds, timed rounds only
    memory: MemoryReading | None = None
    valid_loss: float | None = None
    expert_shares: dict[int, torch.Tensor] = field(default_factory=dict)

    @property
    def expert_util_std(self) -> float | None:
        """The paper's statistic: mean over MoE layers of the std of per-expert token shares."""
        if not self.expert_shares:
            return None  # an all-dense model routes nothing
        return statistics.fmean(expert_share_std(shares) for shares in self.expert_shares.values())


@dataclass(frozen=True)
class Shape:
    """Batch geometry shared by every variant's steps."""

    num_microbatches: int
    micro_batch_size: int
    seq_length: int


def _on_device(batches: Iterator[dict[str, torch.Tensor]], device: torch.device) -> Iterator[dict[str, torch.Tensor]]:
    # The DataLoader yields host tensors; the model's weights live on `device` (a no-op on CPU).
    for batch in batches:
        yield {name: tensor.to(device, non_blocking=True) for name, tensor in batch.items()}


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_variant(
    model: ModelConfig, *, train: TrainConfig, precision: str, train_set, device: torch.device
) -> Variant:
    """The model, Megatron-Core stack, expert-usage hooks and batch stream of one D (seeded alike)."""
    seed_everything(train.seed)
    gpt_model = build_model(model, ParallelConfig(), precision=precision, per_token_loss=True)
    built = sum(parameter.numel() for parameter in gpt_model.parameters())
    stack = build_training_stack(gpt_model, train, precision=precision)
    batches = micro_batches(
        train_set, start_sample=0, micro_batch_size=train.micro_batch_size, data_parallel_rank=0, data_parallel_size=1
    )
    return Variant(
        dense_prefix_layers=model.dense_prefix_layers,
        model=model,
        counts=count_parameters(model),
        built_parameters=built,
        stack=stack,
        usage=ExpertUsage(stack.model, model.num_experts),
        batches=_on_device(batches, device),
    )


def _step(variant: Variant, shape: Shape, device: torch.device) -> float:
    """One optimizer step of `variant`; returns its wall time in seconds."""
    _synchronize(device)
    start = time.perf_counter()
    result = train_step(
        variant.stack,
        variant.batches,
        num_microbatches=shape.num_microbatches,
        micro_batch_size=shape.micro_batch_size,
        seq_length=shape.seq_length,
    )
    _synchronize(device)
    elapsed = time.perf_counter() - start
    variant.losses.append(result.loss)
    return elapsed


def train_round_robin(
    variants: list[Variant], *, config: AblationConfig, shape: Shape, device: torch.device, log: Callable[[str], None]
) -> None:
    """`config.steps` steps of every variant, one of each per round; time the rounds after the
    untimed ones, measure memory on the last untimed one, count routing over the last steps."""
    first_counted = config.steps - config.utilisation_steps + 1
    interval = config.log_interval or max(1, config.timed_steps // 10)
    for step in range(1, config.steps + 1):
        if step == first_counted:
            for variant in variants:
                variant.usage.collect()  # discard the routing of earlier steps
        rotation = step % len(variants)
        for variant in variants[rotation:] + variants[:rotation]:
            if step == config.untimed_steps:
                peak = StepPeak(device)
                resident = resident_bytes(variant.stack.model, variant.stack.optimizer)
                with peak.measure():
                    _step(variant, shape, device)
                variant.memory = MemoryReading(resident_bytes=resident, step_bytes=peak.bytes, method=peak.method)
            elif step > config.untimed_steps:
                variant.step_times.append(_step(variant, shape, device))
            else:
                _step(variant, shape, device)
        # Megatron-Core's aux-loss tracker is process-wide, summed by layer number over every model;
        # nothing here reads it (pretrain() clears it at each log line), so clear it each round.
        clear_aux_losses_tracker()
        timed = step - config.untimed_steps
        if step <= config.untimed_steps:
            log(f"warm-up step {step}/{config.untimed_steps}" + (" (memory measured)" if step == config.untimed_steps else ""))
        elif timed % interval == 0 or step == config.steps:
            parts = [f"D={v.dense_prefix_layers} {1e3 * v.step_times[-1]:8.1f} ms loss {v.losses[-1]:.3f}" for v in variants]
            log(f"round {timed:4d}/{config.timed_steps} | " + " | ".join(parts))
    for variant in variants:
        variant.expert_shares = variant.usage.collect()


def validate(variant: Variant, valid_set, *, train: TrainConfig, shape: Shape, device: torch.device) -> float:
    """Mean loss per target token over `train.eval_iters` fixed global batches of the valid split."""
    batches = _on_device(
        micro_batches(valid_set, start_sample=0, micro_batch_size=shape.micro_batch_size, data_parallel_rank=0, data_parallel_size=1),
        device,
    )
    variant.stack.model.eval()
    loss_sum = tokens = 0.0
    with torch.no_grad():
        for _ in range(train.eval_iters):
            batch_loss, batch_tokens = run_microbatches(
                variant.stack.model, batches, num_microbatches=shape.num_microbatches,
                micro_batch_size=shape.micro_batch_size, seq_length=shape.seq_length, forward_only=True,
            )  # fmt: skip
            loss_sum, tokens = loss_sum + batch_loss, tokens + batch_tokens
    variant.stack.model.train()
    return loss_sum / max(tokens, 1.0)


def environment(device: torch.device, *, precision: str, transformer_impl: str) -> dict[str, str]:
    """Where the figures were measured, for the report's header."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"
    return {
        "device": name,
        "torch": torch.__version__,
        "megatron_core": importlib.metadata.version("megatron-core"),
        "precision": precision,
        "transformer_impl": transformer_impl,
        "date": datetime.date.today().isoformat(),
    }


def run_ablation(config: AblationConfig, *, log: Callable[[str], None] = print) -> dict:
    """Run the whole ablation in this process and return its results (see `report.py` for the shape).

    Raises:
        ConfigError: before any training, for anything that cannot work (data, depths, world size).
    """
    place = initialize_distributed(ParallelConfig(), seed=config.seed)
    if place.world_size != 1:
        raise ConfigError(f"run the ablation as one process (this world has {place.world_size}): the variants share one device")
    sources = resolve_data_sources(DataConfig(preprocessed_dirs=[config.data_dir], num_workers=0))
    if sources.valid is None:
        raise ConfigError(f"{config.data_dir} has no valid split: the validation perplexity needs one")
    base = base_model(config, vocab_size=sources.vocab_size)
    models = variant_models(config, base)
    train = config.train_config()
    precision = resolve_precision(train.precision)
    device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    shape = Shape(
        num_microbatches=train.global_batch_size // train.micro_batch_size,
        micro_batch_size=train.micro_batch_size,
        seq_length=base.seq_length,
    )
    train_set, valid_set = build_patient_datasets(
        train=sources.train,
        valid=sources.valid,
        sequence_length=base.seq_length,
        special=sources.special_ids,
        num_train_samples=config.steps * train.global_batch_size,
        num_valid_samples=config.eval_iters * train.global_batch_size,
        seed=config.seed,
    )
    variants = []
    for dense_prefix, model in models.items():
        variant = build_variant(model, train=train, precision=precision, train_set=train_set, device=device)
        log(
            f"D={dense_prefix}: {variant.counts.total:,} parameters ({variant.built_parameters:,} built), "
            f"{variant.counts.active:,} active per token"
        )
        variants.append(variant)
    log(
        f"{len(variants)} variants of {base.name!r} ({base.num_layers} layers, hidden {base.hidden_size}), "
        f"{config.steps} steps of {train.global_batch_size} x {base.seq_length} tokens each, {precision} on {device}"
    )
    train_round_robin(variants, config=config, shape=shape, device=device, log=log)
    for variant in variants:
        variant.valid_loss = validate(variant, valid_set, train=train, shape=shape, device=device)
        log(f"D={variant.dense_prefix_layers}: validation loss {variant.valid_loss:.4f}")
    env = environment(device, precision=precision, transformer_impl=resolve_transformer_impl(base.transformer_impl))
    if device.type == "cuda":
        # Since the last memory step's reset: the timed rounds with every variant resident at once.
        env["cuda_peak_bytes_all_variants_timed_rounds"] = str(torch.cuda.max_memory_allocated(device))
    result = summarise(variants, config=config, base=base, environment=env)
    if dist.is_initialized():
        dist.barrier()
    return result


def summarise(variants: list[Variant], *, config: AblationConfig, base: ModelConfig, environment: dict) -> dict:
    """The JSON-ready results: one row per variant, ratios against the baseline D."""
    baseline = next(v for v in variants if v.dense_prefix_layers == config.baseline)
    rows = []
    for variant in variants:
        memory = variant.memory.as_dict() if variant.memory else None
        base_peak = baseline.memory.peak_bytes if baseline.memory else None
        peak = memory["peak_bytes"] if memory else None
        rows.append(
            {
                "dense_prefix_layers": variant.dense_prefix_layers,
                "total_params": variant.counts.total,
                "active_params": variant.counts.active,
                "built_params": variant.built_parameters,
                "parameters": variant.counts.as_dict(),
                "active_ratio": variant.counts.active / baseline.counts.active,
                "step_time_s": statistics.median(variant.step_times),
                "step_times_s": variant.step_times,
                "step_time_ratio": per_round_ratio(variant.step_times, baseline.step_times).as_dict(),
                "memory": memory,
                "peak_mem_ratio": peak / base_peak if peak and base_peak else None,
                "valid_loss": variant.valid_loss,
                # capped: an untrained model's loss can overflow exp
                "valid_ppl": math.exp(min(variant.valid_loss, 50.0)),
                "expert_util_std": variant.expert_util_std,
                "expert_util_std_per_layer": {str(k): expert_share_std(s) for k, s in variant.expert_shares.items()},
                "expert_shares": {str(k): [float(x) for x in s] for k, s in variant.expert_shares.items()},
                "train_losses": variant.losses,
            }
        )
    return {
        "config": config.to_dict(),
        "model": base.to_dict(),
        "environment": environment,
        "baseline": config.baseline,
        "utilisation_steps": config.utilisation_steps,
        "memory_method": variants[0].memory.method if variants[0].memory else None,
        "variants": rows,
    }
