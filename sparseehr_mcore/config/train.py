"""Configs of a pretraining run besides the model and the layout: data, optimisation, checkpoints, logging.

Each field's help text lives in the class's `HELP` mapping, from which `examples/pretrain_sparseehr.py
--help` lists every override.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sparseehr_mcore.config.base import ConfigError, raise_problems


@dataclass(kw_only=True)
class DataConfig:
    """Where the token sequences come from: indexed datasets written by tools/preprocess_ehr.py.

    The sources of a split's blend are the preprocessed directories' datasets of that split, then the
    explicit prefixes of that split. One rule weighs them: a weight is a source's relative share of
    the split's samples (weights need not sum to 1), and either no source has one or every source
    does. Without weights each source weighs its number of patients (every patient about once per
    epoch, whichever source holds it). With weights, `weights` has one per preprocessed directory
    (for its training and its validation dataset alike), `train_prefix_weights` one per training
    prefix and `valid_prefix_weights` one per validation prefix.
    """

    preprocessed_dirs: list[str] = field(default_factory=list)
    weights: list[float] | None = None
    train_prefixes: list[str] = field(default_factory=list)
    train_prefix_weights: list[float] | None = None
    valid_prefixes: list[str] = field(default_factory=list)
    valid_prefix_weights: list[float] | None = None
    tokenizer_dir: str | None = None
    num_workers: int = 1

    HELP = {
        "preprocessed_dirs": "output directories of tools/preprocess_ehr.py; their manifests give the "
        "train/valid split datasets and the tokenizer",
        "weights": "blend weight per preprocessed dir, for its train and valid datasets (default: every "
        "source weighs its patient count; given, every source needs a weight)",
        "train_prefixes": "extra training dataset prefixes (path without .bin/.idx)",
        "train_prefix_weights": "blend weight per train prefix, in the units of weights (needed when "
        "any weights are given)",
        "valid_prefixes": "extra validation dataset prefixes (path without .bin/.idx)",
        "valid_prefix_weights": "blend weight per valid prefix, in the units of weights (needed when "
        "any weights are given)",
        "tokenizer_dir": "saved tokenizer (default: the first preprocessed dir's); every dataset is "
        "checked against it",
        "num_workers": "DataLoader worker processes per rank",
    }

    @property
    def weighted(self) -> bool:
        """True when the blends follow given weights, False when every source weighs its size."""
        return any(w is not None for w in (self.weights, self.train_prefix_weights, self.valid_prefix_weights))

    def __post_init__(self) -> None:
        problems = []
        for weights_name, sources_name in (
            ("weights", "preprocessed_dirs"),
            ("train_prefix_weights", "train_prefixes"),
            ("valid_prefix_weights", "valid_prefixes"),
        ):
            weights, sources = getattr(self, weights_name), getattr(self, sources_name)
            if weights is None:
                if self.weighted and sources:
                    problems.append(
                        f"{weights_name} is missing: with blend weights every source needs one "
                        f"({len(sources)} for {sources_name}), or give no weights at all to blend by size"
                    )
                continue
            if len(weights) != len(sources):
                problems.append(f"{weights_name} has {len(weights)} entries for {len(sources)} {sources_name}")
            if not all(isinstance(w, (int, float)) and not isinstance(w, bool) and w > 0 for w in weights):
                problems.append(f"{weights_name}: blend weights must be positive numbers, got {weights}")
        if self.num_workers < 0:
            problems.append("num_workers must be >= 0")
        raise_problems(problems, "DataConfig")


@dataclass(kw_only=True)
class TrainConfig:
    """The optimisation: steps, batch sizes, learning-rate schedule, precision."""

    train_iters: int = 100
    micro_batch_size: int = 4
    global_batch_size: int = 16
    lr: float = 3e-4
    min_lr: float = 3e-5
    warmup_iters: int = 10
    lr_decay_iters: int | None = None
    weight_decay: float = 0.1
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    adam_eps: float = 1e-8
    clip_grad: float = 1.0
    precision: str = "auto"
    recompute: bool = False
    distributed_optimizer: bool | None = None
    eval_interval: int = 50
    eval_iters: int = 5
    seed: int = 1234

    HELP = {
        "train_iters": "optimizer steps to train for",
        "micro_batch_size": "sequences per forward pass on one data-parallel rank",
        "global_batch_size": "sequences per optimizer step over all data-parallel ranks "
        "(a multiple of micro_batch_size x data-parallel size; the rest is gradient accumulation)",
        "lr": "peak learning rate",
        "min_lr": "final learning rate of the cosine decay",
        "warmup_iters": "linear warmup steps",
        "lr_decay_iters": "steps of cosine decay after which lr stays at min_lr (default: train_iters)",
        "weight_decay": "AdamW weight decay",
        "adam_beta1": "AdamW beta1",
        "adam_beta2": "AdamW beta2",
        "adam_eps": "AdamW epsilon",
        "clip_grad": "gradient clipping by global norm (0 disables)",
        "precision": "auto (fp32 on CPU, bf16 on GPU), fp32, bf16, or fp8 (Transformer Engine GPUs)",
        "recompute": "recompute layers in the backward pass (saves activation memory)",
        "distributed_optimizer": "shard optimizer state over data-parallel ranks (default: on with CUDA and "
        "data parallelism; Megatron-Core's distributed optimizer needs CUDA tensors)",
        "eval_interval": "validate every N steps (0 disables)",
        "eval_iters": "validation batches per evaluation",
        "seed": "random seed for weights, data order and dropout",
    }

    def __post_init__(self) -> None:
        problems = []
        for key in ("train_iters", "micro_batch_size", "global_batch_size", "eval_iters"):
            if getattr(self, key) < 1:
                problems.append(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.global_batch_size % max(self.micro_batch_size, 1):
            problems.append(
                f"global_batch_size ({self.global_batch_size}) must be a multiple of micro_batch_size "
                f"({self.micro_batch_size})"
            )
        if not 0 <= self.min_lr <= self.lr:
            problems.append(f"need 0 <= min_lr ({self.min_lr}) <= lr ({self.lr})")
        if self.warmup_iters < 0 or self.eval_interval < 0 or self.clip_grad < 0 or self.weight_decay < 0:
            problems.append("warmup_iters, eval_interval, clip_grad and weight_decay must be >= 0")
        if self.warmup_iters >= self.decay_iters:
            problems.append(
                f"warmup_iters ({self.warmup_iters}) must be smaller than lr_decay_iters or train_iters ({self.decay_iters})"
            )
        if self.precision not in ("auto", "fp32", "bf16", "fp8"):
            problems.append(f"precision must be auto, fp32, bf16 or fp8; got {self.precision!r}")
        raise_problems(problems, "TrainConfig")

    @property
    def decay_iters(self) -> int:
        return self.lr_decay_iters or self.train_iters

    def micro_batches_per_step(self, *, data_parallel_size: int) -> int:
        """Gradient-accumulation micro-batches per optimizer step on each data-parallel rank."""
        per_step = self.micro_batch_size * data_parallel_size
        if self.global_batch_size % per_step:
            raise ConfigError(
                f"global_batch_size ({self.global_batch_size}) must be a multiple of micro_batch_size x "
                f"data-parallel size ({self.micro_batch_size} x {data_parallel_size})"
            )
        return self.global_batch_size // per_step


@dataclass(kw_only=True)
class CheckpointConfig:
    """Saving and resuming."""

    save_dir: str | None = None
    save_interval: int = 0
    keep_last: int = 2
    load_dir: str | None = None
    load_optimizer: bool = True
    overwrite: bool = False
    fallback: bool = True

    HELP = {
        "save_dir": "checkpoint directory of this run (also holds the resolved config and tensorboard logs)",
        "save_interval": "save every N steps (0: only at the end); the end of training always saves",
        "keep_last": "how many most recent complete checkpoints to keep (0 keeps all); interrupted saves are "
        "neither counted nor deleted",
        "load_dir": "resume from this checkpoint root or iter_* directory (default: save_dir when it holds one)",
        "load_optimizer": "restore optimizer, scheduler, RNG and data position (false: weights only, step 0; "
        "under bf16 the optimizer's fp32 main weights are taken from them)",
        "overwrite": "start afresh: empty save_dir first, its own checkpoints included (false: resume from "
        "save_dir's checkpoints, and refuse a save_dir holding files a run does not write)",
        "fallback": "when the checkpoint to resume from cannot be read (a damaged or missing file), resume from "
        "the newest readable one before it (default true; false: stop, exit 2, with the damaged file named)",
    }

    def __post_init__(self) -> None:
        problems = []
        if self.save_interval < 0 or self.keep_last < 0:
            problems.append("save_interval and keep_last must be >= 0")
        if self.overwrite and self.save_dir and self.load_dir:
            save, load = Path(self.save_dir).resolve(), Path(self.load_dir).resolve()
            if save in (load, *load.parents):
                problems.append(f"overwrite would delete load_dir ({self.load_dir}), which is inside save_dir ({self.save_dir})")
        raise_problems(problems, "CheckpointConfig")


@dataclass(kw_only=True)
class LoggingConfig:
    """Console and tensorboard logging."""

    log_interval: int = 10
    tensorboard_dir: str | None = None

    HELP = {
        "log_interval": "log training metrics every N steps",
        "tensorboard_dir": "tensorboard event directory (default: SAVE_DIR/tensorboard; none without save_dir)",
    }

    def __post_init__(self) -> None:
        raise_problems(["log_interval must be >= 1"] if self.log_interval < 1 else [], "LoggingConfig")
