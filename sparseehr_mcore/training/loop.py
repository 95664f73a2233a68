"""`pretrain(run)`: the whole pretraining run, from process groups to the last checkpoint.

The run is a sequence of parts, each in its own place:

| part | where |
|---|---|
| build: process groups, checked inputs, logs, model and stack, datasets | `setup.build_run`, `setup.build_datasets` |
| restore: weights (and optimizer, schedule, RNG, data position) of a checkpoint | `_restore` here, `resume.restore_checkpoint` (which one), `checkpoint.load_training_checkpoint` |
| train step: one optimizer step over a global batch | `_train_step` here, `stack.train_step` |
| validate | `validation.validate` |
| log | `reporting.StepReporter`, `run_logs.RunLogger` (cut back to the restored step on resume) |
| save | `_save` here, `checkpoint.save_training_checkpoint` |

`pretrain` only says when each happens.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sparseehr_mcore.config.run import RunConfig
from sparseehr_mcore.training.checkpoint import TrainingState, load_training_checkpoint, save_training_checkpoint
from sparseehr_mcore.training.data import micro_batches
from sparseehr_mcore.training.reporting import StepReporter
from sparseehr_mcore.training.resume import restore_checkpoint
from sparseehr_mcore.training.setup import RunParts, build_datasets, build_run
from sparseehr_mcore.training.stack import StepResult, train_step
from sparseehr_mcore.training.validation import validate


@dataclass
class TrainResult:
    """What a finished run reports (on every rank; losses are known on the last pipeline stage)."""

    losses: list[float] = field(default_factory=list)  # per step, from the first step this process ran
    valid_losses: dict[int, float] = field(default_factory=dict)
    final_iteration: int = 0
    checkpoint: Path | None = None


def pretrain(run: RunConfig, *, log_fn: Callable[[str], None] = print) -> TrainResult:
    """Train `run.model` on `run.data` as `run.train` says, saving and resuming per `run.checkpoint`.

    Every configuration problem is raised as ConfigError before the first step. Call under torchrun
    (or plain python for one process); process groups are created here.
    """
    parts = build_run(run, log_fn=log_fn)
    state = _restore(parts)
    parts.logger.start(after_step=state.iteration, log=parts.log)
    train_set, valid_set = build_datasets(parts)
    reporter = StepReporter(parts)
    # Starting a DataLoader draws its workers' base seed from torch's global generator. A resumed run
    # starts it after restoring the RNG state of the checkpoint, so the draw must not come out of
    # the stream that dropout uses next.
    with torch.random.fork_rng(devices=[]):
        batches = micro_batches(
            train_set,
            start_sample=state.consumed_train_samples,
            micro_batch_size=run.train.micro_batch_size,
            data_parallel_rank=parts.place.dp_rank,
            data_parallel_size=parts.place.dp_size,
            num_workers=run.data.num_workers,
        )
    result = TrainResult(final_iteration=state.iteration)
    while state.iteration < run.train.train_iters:
        step = _train_step(parts, batches=batches, state=state)
        reporter.step_done()
        result.losses.append(step.loss)
        if _every(state.iteration, run.logging.log_interval, last=run.train.train_iters):
            reporter.report_training(iteration=state.iteration, step=step)
        if valid_set is not None and _every(state.iteration, run.train.eval_interval):
            result.valid_losses[state.iteration] = validate(parts=parts, valid_set=valid_set, usage=reporter.usage)
            reporter.report_validation(iteration=state.iteration, loss=result.valid_losses[state.iteration])
        if parts.save_dir and _every(state.iteration, run.checkpoint.save_interval, last=run.train.train_iters):
            result.checkpoint = _save(parts, state=state)
    result.final_iteration = state.iteration
    parts.logger.close()
    return result


def _every(iteration: int, interval: int, *, last: int | None = None) -> bool:
    """Whether `iteration` is due for something done every `interval` steps (0: never) and at `last`."""
    return iteration == last or (interval > 0 and iteration % interval == 0)


def _restore(parts: RunParts) -> TrainingState:
    """Load the checkpoint this run continues from, if any (`checkpoint.load_dir`, else the latest in
    `save_dir`, else the newest readable one before it: `resume`); a fresh run starts at step 0."""
    checkpoint = parts.run.checkpoint
    return restore_checkpoint(
        load_dir=checkpoint.load_dir,
        save_dir=parts.save_dir,
        fallback=checkpoint.fallback,
        load=functools.partial(
            load_training_checkpoint,
            model=parts.stack.model,
            optimizer=parts.stack.optimizer,
            scheduler=parts.stack.scheduler,
            model_config=parts.run.model,
            parallel=parts.run.parallel,
            load_optimizer=checkpoint.load_optimizer,
            log=parts.log,
        ),
        log=parts.log,
    )


def _train_step(parts: RunParts, *, batches: Iterator, state: TrainingState) -> StepResult:
    """One optimizer step over the next global batch; advances `state`."""
    train = parts.run.train
    step = train_step(
        parts.stack,
        batches,
        num_microbatches=parts.num_microbatches,
        micro_batch_size=train.micro_batch_size,
        seq_length=parts.run.model.seq_length,
    )
    state.iteration += 1
    state.consumed_train_samples += train.global_batch_size
    return step


def _save(parts: RunParts, *, state: TrainingState) -> Path:
    """A complete checkpoint of this step (a collective), pruned to `checkpoint.keep_last`."""
    directory = save_training_checkpoint(
        parts.save_dir,
        state=state,
        model=parts.stack.model,
        optimizer=parts.stack.optimizer,
        scheduler=parts.stack.scheduler,
        model_config=parts.run.model,
        parallel=parts.run.parallel,
        tokenizer_dir=parts.sources.tokenizer_dir,
        keep_last=parts.run.checkpoint.keep_last,
    )
    parts.log(f"saved checkpoint {directory}")
    return directory
