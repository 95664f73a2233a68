"""Build a pretraining run: process groups, checked inputs, logging, the model with its training
stack, and the datasets.

Everything here runs before the first step. Each configuration problem is raised as ConfigError on
every rank, with what to change, before any training compute.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from megatron.core import parallel_state

from sparseehr_mcore.config import ConfigError, ModelConfig
from sparseehr_mcore.config.run import RunConfig
from sparseehr_mcore.config.train import TrainConfig
from sparseehr_mcore.distributed import ProcessPlace, initialize_distributed
from sparseehr_mcore.model.builder import build_model
from sparseehr_mcore.training.data import build_patient_datasets
from sparseehr_mcore.training.inputs import DataSources, resolve_data_sources
from sparseehr_mcore.training.run_logs import RunLogger
from sparseehr_mcore.training.stack import TrainingStack, build_training_stack, resolve_precision


@dataclass(kw_only=True)
class RunParts:
    """What `build_run` makes: everything the steps of the loop read."""

    run: RunConfig
    place: ProcessPlace
    sources: DataSources
    num_microbatches: int
    precision: str
    stack: TrainingStack
    save_dir: Path | None
    logger: RunLogger  # opened by the loop once it knows the step it continues after
    log: Callable[[str], None]  # progress lines: printed by the logging rank, dropped elsewhere


def check_vocabulary(*, sources: DataSources, model: ModelConfig) -> None:
    """The model's vocabulary must be the tokenizer's."""
    if sources.vocab_size != model.vocab_size:
        raise ConfigError(
            f"the tokenizer has {sources.vocab_size} tokens but model.vocab_size is {model.vocab_size}: "
            f"set model.vocab_size to {sources.vocab_size} (or to 'tokenizer')"
        )


def micro_batches_per_step(*, train: TrainConfig, data_parallel_size: int) -> int:
    """Gradient-accumulation micro-batches per optimizer step on each data-parallel rank."""
    per_step = train.micro_batch_size * data_parallel_size
    if train.global_batch_size % per_step:
        raise ConfigError(
            f"global_batch_size ({train.global_batch_size}) must be a multiple of micro_batch_size x data-parallel "
            f"size ({train.micro_batch_size} x {data_parallel_size})"
        )
    return train.global_batch_size // per_step


def _is_logging_rank(*, place: ProcessPlace, pipeline_size: int) -> bool:
    """One process reports: the first tensor-parallel rank of the first data-parallel replica on the
    last pipeline stage, where the losses are known."""
    return (
        place.pp_rank == pipeline_size - 1
        and parallel_state.get_tensor_model_parallel_rank() == 0
        and place.dp_rank == 0
    )


def build_run(run: RunConfig, *, log_fn: Callable[[str], None]) -> RunParts:
    """Set up process groups, check the inputs against the run, open the logs and build the model
    (this rank's part of it) inside Megatron-Core's training stack.

    Args:
        run: the resolved run config.
        log_fn: where the logging rank's progress lines go.
    """
    place = initialize_distributed(run.parallel, model=run.model, seed=run.train.seed)
    sources = resolve_data_sources(run.data)
    check_vocabulary(sources=sources, model=run.model)
    num_microbatches = micro_batches_per_step(train=run.train, data_parallel_size=place.dp_size)

    logging_rank = _is_logging_rank(place=place, pipeline_size=run.parallel.pp)
    save_dir = Path(run.checkpoint.save_dir) if run.checkpoint.save_dir else None
    tensorboard_dir = run.logging.tensorboard_dir or (save_dir / "tensorboard" if save_dir else None)
    metrics_file = save_dir / "metrics.jsonl" if save_dir else None
    logger = RunLogger(tensorboard_dir, metrics_file=metrics_file, enabled=logging_rank)
    if save_dir and place.rank == 0:
        save_dir.mkdir(parents=True, exist_ok=True)
        run.to_yaml(save_dir / "run_config.yaml")

    precision = resolve_precision(run.train.precision)
    gpt_model = build_model(
        run.model, run.parallel, precision=precision, recompute=run.train.recompute, per_token_loss=True
    )
    return RunParts(
        run=run,
        place=place,
        sources=sources,
        num_microbatches=num_microbatches,
        precision=precision,
        stack=build_training_stack(gpt_model, run.train, precision=precision),
        save_dir=save_dir,
        logger=logger,
        log=log_fn if logging_rank else (lambda text: None),
    )


def build_datasets(parts: RunParts):
    """The training and validation datasets, each sized to the samples the run will draw."""
    train = parts.run.train
    return build_patient_datasets(
        train=parts.sources.train,
        valid=parts.sources.valid,
        sequence_length=parts.run.model.seq_length,
        special=parts.sources.special_ids,
        num_train_samples=train.train_iters * train.global_batch_size,
        num_valid_samples=train.eval_iters * train.global_batch_size if train.eval_interval else 0,
        seed=train.seed,
    )
