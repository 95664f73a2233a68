"""Build a pretraining run: process groups, checked inputs, logging, the model with its training
stack, and the datasets.

Everything here runs before the first step. Each configuration problem is raised as ConfigError on
every rank, with what to change, before any training compute.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from megatron.core import parallel_state

from sparseehr_mcore.checkpointing.layout import LATEST_FILE
from sparseehr_mcore.config import ConfigError, ModelConfig
from sparseehr_mcore.config.run import RunConfig
from sparseehr_mcore.distributed import ProcessPlace, initialize_distributed
from sparseehr_mcore.model.builder import build_model
from sparseehr_mcore.outputs import OutputError, OutputKind, check_output_dir, clear_output_dir
from sparseehr_mcore.training.data import build_patient_datasets
from sparseehr_mcore.training.inputs import DataSources, resolve_data_sources
from sparseehr_mcore.training.run_logs import RunLogger
from sparseehr_mcore.training.stack import TrainingStack, build_training_stack, resolve_precision


RUN_CONFIG_FILE = "run_config.yaml"
METRICS_FILE = "metrics.jsonl"
# What a run writes into its save dir (its checkpoints, interrupted saves included, and its logs):
# never foreign, so a run resumes there; anything else is refused unless checkpoint.overwrite.
RUN_OUTPUTS = OutputKind(
    flag="checkpoint.save_dir",
    own=("iter_*", LATEST_FILE, f"{Path(LATEST_FILE).stem}.tmp", RUN_CONFIG_FILE, METRICS_FILE,
         f"{Path(METRICS_FILE).stem}.tmp", "tensorboard"),  # *.tmp: an atomic rewrite a kill interrupted
    overwrite_flag="--checkpoint.overwrite true",
)


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


def claim_save_dir(save_dir: Path, *, overwrite: bool) -> None:
    """Before the process group exists: refuse a save dir that cannot be written or holds files no
    run writes (unless `overwrite`); with `overwrite`, empty it.

    Every rank reaches the same verdict from what it reads, so all stop together; only global rank
    0 (torchrun's RANK) probes and empties the folder, before it joins the process group, so no
    rank can see the folder half emptied.
    """
    rank = int(os.environ.get("RANK", "0"))
    try:
        check_output_dir(save_dir, kind=RUN_OUTPUTS, overwrite=overwrite, probe=rank == 0)
    except OutputError as err:
        raise ConfigError(str(err)) from None
    if overwrite and rank == 0:
        clear_output_dir(save_dir)


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
    if run.checkpoint.save_dir:
        claim_save_dir(Path(run.checkpoint.save_dir), overwrite=run.checkpoint.overwrite)
    place = initialize_distributed(run.parallel, model=run.model, seed=run.train.seed)
    sources = resolve_data_sources(run.data)
    check_vocabulary(sources=sources, model=run.model)
    num_microbatches = run.train.micro_batches_per_step(data_parallel_size=place.dp_size)

    logging_rank = _is_logging_rank(place=place, pipeline_size=run.parallel.pp)
    save_dir = Path(run.checkpoint.save_dir) if run.checkpoint.save_dir else None
    tensorboard_dir = run.logging.tensorboard_dir or (save_dir / "tensorboard" if save_dir else None)
    metrics_file = save_dir / METRICS_FILE if save_dir else None
    logger = RunLogger(tensorboard_dir, metrics_file=metrics_file, enabled=logging_rank)
    if save_dir and place.rank == 0:
        save_dir.mkdir(parents=True, exist_ok=True)
        run.to_yaml(save_dir / RUN_CONFIG_FILE)

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
