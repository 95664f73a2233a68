"""AblationConfig: which architecture, which dense prefixes, how long, on which data.

Every variant is the same architecture (`ModelConfig.replace(dense_prefix_layers=D)`) trained with
the same optimisation on the same batches, so the only difference between two rows of the table is D.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparseehr_mcore.config import PRESETS, ConfigError, ModelConfig
from sparseehr_mcore.config.base import load_yaml
from sparseehr_mcore.config.train import TrainConfig

VOCAB_FROM_TOKENIZER = "tokenizer"


@dataclass(kw_only=True)
class AblationConfig:
    """One dense-prefix ablation run (see `HELP` for each field)."""

    data_dir: str
    output_dir: str = "outputs/ablation"
    overwrite: bool = False
    scale: str | None = "small"
    model_file: str | None = None
    dense_prefixes: tuple[int, ...] = (0, 2, 4, 8)
    steps: int = 40
    untimed_steps: int = 3
    seq_length: int | None = None
    micro_batch_size: int = 4
    global_batch_size: int | None = None
    lr: float = 1e-3
    warmup_steps: int | None = None
    eval_iters: int = 4
    util_steps: int | None = None
    precision: str = "auto"
    seed: int = 1234
    log_interval: int | None = None

    HELP = {
        "data_dir": "an output directory of tools/preprocess_ehr.py: its train split trains every variant, "
        "its valid split gives the validation perplexity",
        "output_dir": "where ablation.json, ablation.md and ablation.png go (created; an earlier ablation's "
        "files there are replaced)",
        "overwrite": "write into an --output-dir that holds files this tool did not write (default: refuse it)",
        "scale": f"model preset: {', '.join(PRESETS)} (the paper preset is 16 layers of hidden 2048: GPU only)",
        "model_file": "a ModelConfig YAML file instead of a preset (a run config's `model:` section also works; "
        "`preset: tiny` plus overrides such as `num_layers: 8` too)",
        "dense_prefixes": "the dense-prefix sizes D to compare; the first is the baseline of the ratio columns "
        "(0, the all-MoE model, where present)",
        "steps": "optimizer steps per variant, identical batches for all",
        "untimed_steps": "leading steps not timed (warm-up); the last of them also measures peak memory",
        "seq_length": "tokens per sequence (default: the architecture's)",
        "micro_batch_size": "sequences per forward pass",
        "global_batch_size": "sequences per optimizer step (a multiple of micro_batch_size; default: micro_batch_size)",
        "lr": "peak learning rate (linear warmup, cosine decay to lr/10 at the last step)",
        "warmup_steps": "learning-rate warmup steps (default: a tenth of the steps)",
        "eval_iters": "global batches of the valid split for the validation perplexity after training",
        "util_steps": "expert utilisation is measured over the last N training steps (default: the last half), "
        "since early routers are still random",
        "precision": "auto (fp32 on CPU, bf16 on GPU), fp32, bf16 or fp8 (Transformer Engine GPUs)",
        "seed": "seed for the weights of every variant and the data order",
        "log_interval": "print a progress line every N rounds (default: about 10 lines in all)",
    }

    def __post_init__(self) -> None:
        self.dense_prefixes = tuple(self.dense_prefixes)
        problems = []
        if (self.scale is None) == (self.model_file is None):
            problems.append("give exactly one of scale (a preset) and model_file")
        if self.scale is not None and self.scale not in PRESETS:
            problems.append(f"scale must be one of {', '.join(PRESETS)}; got {self.scale!r}")
        if not self.dense_prefixes:
            problems.append("dense_prefixes is empty: name at least one D")
        if any(d < 0 for d in self.dense_prefixes):
            problems.append(f"dense prefixes must be >= 0, got {list(self.dense_prefixes)}")
        if len(set(self.dense_prefixes)) != len(self.dense_prefixes):
            problems.append(f"dense prefixes repeat: {list(self.dense_prefixes)}")
        if self.untimed_steps < 1:
            problems.append("untimed_steps must be >= 1 (the last untimed step measures peak memory)")
        if self.steps < self.untimed_steps + 2:
            problems.append(
                f"steps ({self.steps}) must exceed untimed_steps ({self.untimed_steps}) by at least 2, "
                "so that there are timed rounds to take ratios over"
            )
        for key in ("micro_batch_size", "eval_iters"):
            if getattr(self, key) < 1:
                problems.append(f"{key} must be >= 1")
        if self.util_steps is not None and not 1 <= self.util_steps <= self.steps:
            problems.append(f"util_steps must be between 1 and steps ({self.steps})")
        if self.log_interval is not None and self.log_interval < 1:
            problems.append("log_interval must be >= 1")
        if problems:
            raise ConfigError("AblationConfig is invalid:\n  - " + "\n  - ".join(problems))

    @property
    def baseline(self) -> int:
        """The D the ratio columns divide by: the all-MoE model where it is run, else the first D."""
        return 0 if 0 in self.dense_prefixes else self.dense_prefixes[0]

    @property
    def timed_steps(self) -> int:
        return self.steps - self.untimed_steps

    @property
    def utilisation_steps(self) -> int:
        return self.util_steps or max(1, self.steps // 2)

    def train_config(self) -> TrainConfig:
        """The optimisation every variant shares (validation happens once, after training)."""
        warmup = self.warmup_steps if self.warmup_steps is not None else max(1, self.steps // 10)
        return TrainConfig(
            train_iters=self.steps,
            micro_batch_size=self.micro_batch_size,
            global_batch_size=self.global_batch_size or self.micro_batch_size,
            lr=self.lr,
            min_lr=self.lr / 10,
            warmup_iters=warmup,
            eval_interval=0,
            eval_iters=self.eval_iters,
            precision=self.precision,
            seed=self.seed,
        )

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) if name != "dense_prefixes" else list(self.dense_prefixes) for name in self.HELP}


def _model_values(path: str | Path) -> dict[str, Any]:
    """The ModelConfig mapping of a model file, or of a run file's `model:` section."""
    values = load_yaml(path)
    if isinstance(values, dict) and isinstance(values.get("model"), dict):
        values = values["model"]
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: a model config is a mapping of ModelConfig fields")
    return dict(values)


def base_model(config: AblationConfig, *, vocab_size: int) -> ModelConfig:
    """The architecture the variants share, with the data's vocabulary and the chosen sequence length.

    A preset's vocabulary is nominal and always becomes the tokenizer's; a model file may leave
    `vocab_size` out or set it to 'tokenizer', and a different number there is an error.
    """
    overrides: dict[str, Any] = {"vocab_size": vocab_size}
    if config.seq_length:
        overrides["seq_length"] = config.seq_length
    if config.scale is not None:
        return ModelConfig.from_preset(config.scale, **overrides)
    values = _model_values(config.model_file)
    given = values.pop("vocab_size", VOCAB_FROM_TOKENIZER)
    if given not in (VOCAB_FROM_TOKENIZER, vocab_size):
        raise ConfigError(
            f"{config.model_file}: vocab_size is {given} but the tokenizer of {config.data_dir} has {vocab_size} "
            "tokens: set it to 'tokenizer' (or leave it out)"
        )
    preset = values.pop("preset", None)
    values.update(overrides)
    if preset is not None:
        return ModelConfig.from_preset(preset, **values)
    return ModelConfig.from_dict(values, where=str(config.model_file))


def variant_models(config: AblationConfig, base: ModelConfig) -> dict[int, ModelConfig]:
    """One ModelConfig per dense prefix D, in the order asked for."""
    too_deep = [d for d in config.dense_prefixes if d > base.num_layers]
    if too_deep:
        raise ConfigError(
            f"dense prefixes {too_deep} exceed the {base.num_layers} layers of {base.name!r}: keep D <= "
            f"{base.num_layers}, or pick a deeper model (--scale small has 8 layers, paper 16; or a model file "
            "such as `preset: tiny` with `num_layers: 8`)"
        )
    return {d: base.replace(dense_prefix_layers=d) for d in config.dense_prefixes}
