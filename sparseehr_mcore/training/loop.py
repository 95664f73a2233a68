"""`pretrain(run_config)`: the whole pretraining run, from process groups to the last checkpoint."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from megatron.core import parallel_state
from megatron.core.transformer.moe.moe_utils import (
    clear_aux_losses_tracker,
    get_moe_layer_wise_logging_tracker,
    reduce_aux_losses_tracker_across_ranks,
)

from sparseehr_mcore.config import ConfigError
from sparseehr_mcore.config.run import RunConfig
from sparseehr_mcore.distributed import ProcessPlace, initialize_distributed
from sparseehr_mcore.model.accounting import count_parameters, flops_per_token
from sparseehr_mcore.model.builder import build_model
from sparseehr_mcore.training.checkpoint import (
    TrainingState,
    find_checkpoint,
    load_training_checkpoint,
    save_training_checkpoint,
)
from sparseehr_mcore.training.data import build_patient_datasets, micro_batches
from sparseehr_mcore.training.inputs import DataSources, resolve_data_sources
from sparseehr_mcore.training.metrics import (
    ExpertUsage,
    RunLogger,
    format_step_line,
    measure_matmul_peak,
    step_report,
)
from sparseehr_mcore.training.stack import build_training_stack, resolve_precision, run_microbatches, train_step


@dataclass
class TrainResult:
    """What a finished run reports (on every rank; losses are known on the last pipeline stage)."""

    losses: list[float] = field(default_factory=list)  # per step, from the first step this process ran
    valid_losses: dict[int, float] = field(default_factory=dict)
    final_iteration: int = 0
    checkpoint: Path | None = None


def _aux_losses(forward_passes: int, num_layers: int) -> dict[str, float]:
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


def pretrain(run: RunConfig, *, log_fn=print) -> TrainResult:
    """Train `run.model` on `run.data` as `run.train` says, saving and resuming per `run.checkpoint`.

    Every configuration problem is raised as ConfigError before the first step. Call under torchrun
    (or plain python for one process); process groups are created here.
    """
    place = initialize_distributed(run.parallel, model=run.model, seed=run.train.seed)
    sources: DataSources = resolve_data_sources(run.data)
    if sources.vocab_size != run.model.vocab_size:
        raise ConfigError(
            f"the tokenizer has {sources.vocab_size} tokens but model.vocab_size is {run.model.vocab_size}: "
            f"set model.vocab_size to {sources.vocab_size} (or to 'tokenizer')"
        )
    train = run.train
    per_step = train.micro_batch_size * place.dp_size
    if train.global_batch_size % per_step:
        raise ConfigError(
            f"global_batch_size ({train.global_batch_size}) must be a multiple of micro_batch_size x data-parallel "
            f"size ({train.micro_batch_size} x {place.dp_size})"
        )
    num_microbatches = train.global_batch_size // per_step
    logging_rank = (
        place.pp_rank == run.parallel.pp - 1
        and parallel_state.get_tensor_model_parallel_rank() == 0
        and place.dp_rank == 0
    )
    save_dir = Path(run.checkpoint.save_dir) if run.checkpoint.save_dir else None
    tensorboard_dir = run.logging.tensorboard_dir or (save_dir / "tensorboard" if save_dir else None)
    logger = RunLogger(tensorboard_dir, metrics_file=save_dir / "metrics.jsonl" if save_dir else None, enabled=logging_rank)
    log = (lambda text: log_fn(text)) if logging_rank else (lambda text: None)
    if save_dir and place.rank == 0:
        save_dir.mkdir(parents=True, exist_ok=True)
        run.to_yaml(save_dir / "run_config.yaml")

    precision = resolve_precision(train.precision)
    gpt_model = build_model(run.model, run.parallel, precision=precision, recompute=train.recompute, per_token_loss=True)
    stack = build_training_stack(gpt_model, train, precision=precision)
    state = TrainingState()
    checkpoint = find_checkpoint(run.checkpoint.load_dir, save_dir)
    if checkpoint is not None:
        state = load_training_checkpoint(
            checkpoint,
            model=stack.model,
            optimizer=stack.optimizer,
            scheduler=stack.scheduler,
            model_config=run.model,
            parallel=run.parallel,
            load_optimizer=run.checkpoint.load_optimizer,
            log=log,
        )

    seq_length = run.model.seq_length
    train_set, valid_set = build_patient_datasets(
        train=sources.train,
        valid=sources.valid,
        sequence_length=seq_length,
        special=sources.special_ids,
        num_train_samples=train.train_iters * train.global_batch_size,
        num_valid_samples=train.eval_iters * train.global_batch_size if train.eval_interval else 0,
        seed=train.seed,
    )
    counts = count_parameters(run.model)
    flops_per_sequence = flops_per_token(run.model)["training"] * seq_length
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    peak = measure_matmul_peak(device=device, dtype=gpt_model.config.params_dtype)
    log(
        f"model {run.model.name}: {counts.total:,} parameters, {counts.active:,} active per token; "
        f"layout TP={run.parallel.tp} PP={run.parallel.pp} EP={run.parallel.ep} DP={place.dp_size}; "
        f"{num_microbatches} micro-batches of {train.micro_batch_size} per step; precision {precision}; "
        f"matmul peak {peak / 1e9:,.1f} GFLOP/s per device"
    )
    usage = ExpertUsage(stack.model, run.model.num_experts)
    batches = micro_batches(
        train_set,
        start_sample=state.consumed_train_samples,
        micro_batch_size=train.micro_batch_size,
        data_parallel_rank=place.dp_rank,
        data_parallel_size=place.dp_size,
        num_workers=run.data.num_workers,
    )
    result = TrainResult(final_iteration=state.iteration)
    window_start, window_steps = time.perf_counter(), 0
    while state.iteration < train.train_iters:
        step = train_step(
            stack, batches, num_microbatches=num_microbatches, micro_batch_size=train.micro_batch_size, seq_length=seq_length
        )
        state.iteration += 1
        state.consumed_train_samples += train.global_batch_size
        window_steps += 1
        result.losses.append(step.loss)
        if state.iteration % run.logging.log_interval == 0 or state.iteration == train.train_iters:
            aux = _aux_losses(num_microbatches * window_steps, run.model.num_layers)
            elapsed = time.perf_counter() - window_start
            sequences = window_steps * train.global_batch_size
            values = step_report(
                step,
                aux_losses=aux,
                expert_shares=usage.collect(),
                lr=stack.optimizer.param_groups[0]["lr"],
                tokens_per_s=sequences * seq_length / elapsed,
                mfu=sequences * flops_per_sequence / elapsed / (peak * place.world_size),
            )
            logger.scalars(state.iteration, values)
            log(format_step_line(state.iteration, train.train_iters, values, skipped=step.update_skipped))
            window_start, window_steps = time.perf_counter(), 0
        if valid_set is not None and train.eval_interval and state.iteration % train.eval_interval == 0:
            valid_loss = evaluate(stack, valid_set, run, place, num_microbatches, usage)
            result.valid_losses[state.iteration] = valid_loss
            perplexity = math.exp(min(valid_loss, 50.0))  # capped: an untrained model's loss can overflow exp
            logger.scalars(state.iteration, {"valid/lm_loss": valid_loss, "valid/ppl": perplexity})
            log(f"validation at step {state.iteration}: loss {valid_loss:.4f} ppl {perplexity:.2f}")
        interval = run.checkpoint.save_interval
        if save_dir and (state.iteration == train.train_iters or (interval and state.iteration % interval == 0)):
            result.checkpoint = save_training_checkpoint(
                save_dir,
                state=state,
                model=stack.model,
                optimizer=stack.optimizer,
                scheduler=stack.scheduler,
                model_config=run.model,
                parallel=run.parallel,
                tokenizer_dir=sources.tokenizer_dir,
                keep_last=run.checkpoint.keep_last,
            )
            log(f"saved checkpoint {result.checkpoint}")
    result.final_iteration = state.iteration
    logger.close()
    return result


def evaluate(stack, valid_set, run: RunConfig, place: ProcessPlace, num_microbatches: int, usage: ExpertUsage) -> float:
    """Mean validation loss per target token over `eval_iters` fixed global batches."""
    train = run.train
    batches = micro_batches(
        valid_set, start_sample=0, micro_batch_size=train.micro_batch_size,
        data_parallel_rank=place.dp_rank, data_parallel_size=place.dp_size,
    )  # fmt: skip
    stack.model.eval()
    usage.paused = True
    loss_sum = tokens = 0.0
    with torch.no_grad():
        for _ in range(train.eval_iters):
            batch_loss, batch_tokens = run_microbatches(
                stack.model, batches, num_microbatches=num_microbatches, micro_batch_size=train.micro_batch_size,
                seq_length=run.model.seq_length, forward_only=True,
            )  # fmt: skip
            loss_sum, tokens = loss_sum + batch_loss, tokens + batch_tokens
    usage.paused = False
    stack.model.train()
    return loss_sum / max(tokens, 1.0)
