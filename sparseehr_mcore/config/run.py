"""RunConfig: one pretraining run, read from YAML and overridden from the command line.

A run file has one section per concern:

```yaml
model: {preset: tiny, vocab_size: tokenizer}   # a preset plus overrides, or every field
parallel: {tensor_model_parallel_size: 1}
data: {preprocessed_dirs: [out/mimic-iv]}
train: {train_iters: 100, global_batch_size: 16}
checkpoint: {save_dir: runs/tiny, save_interval: 50}
logging: {log_interval: 10}
```

Every field of every section is also a command-line flag, `--SECTION.FIELD VALUE`
(`--train.train_iters 20`, `--parallel.tensor_model_parallel_size 2`), generated from the
dataclasses so that `--help` lists them all with their help text and they cannot drift apart; each
flag's metavar says what it accepts (`config.flags`).
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sparseehr_mcore.config.base import ConfigError, config_from_dict, dump_yaml, load_yaml
from sparseehr_mcore.config.flags import add_config_flags, field_type, parse_value
from sparseehr_mcore.config.model import PRESETS, ModelConfig
from sparseehr_mcore.config.parallel import ParallelConfig
from sparseehr_mcore.config.train import CheckpointConfig, DataConfig, LoggingConfig, TrainConfig

SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "parallel": ParallelConfig,
    "data": DataConfig,
    "train": TrainConfig,
    "checkpoint": CheckpointConfig,
    "logging": LoggingConfig,
}
VOCAB_FROM_TOKENIZER = "tokenizer"


@dataclass(kw_only=True)
class RunConfig:
    """Everything one pretraining run needs, each concern in its own dataclass."""

    model: ModelConfig
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name).to_dict() if name in ("model", "parallel") else dataclasses.asdict(getattr(self, name)) for name in SECTIONS}

    def to_yaml(self, path: str | Path) -> None:
        dump_yaml(self.to_dict(), path)


def build_override_parser(parser: argparse.ArgumentParser) -> None:
    """Add `--SECTION.FIELD` for every config field (`config.flags`), and `--model.preset`."""
    add_config_flags(parser, SECTIONS)
    model_group = next(g for g in parser._action_groups if g.title == f"model ({ModelConfig.__name__})")
    model_group.add_argument(
        "--model.preset",
        dest="model.preset",
        metavar="{" + ",".join(PRESETS) + "}",
        default=argparse.SUPPRESS,
        help="start from this model preset; the other --model.* flags override its fields",
    )


def resolve_run_config(
    values: dict[str, Any],
    overrides: dict[str, str],
    *,
    tokenizer_vocab_size: Callable[[DataConfig], int] | None = None,
    where: str = "",
) -> RunConfig:
    """Merge a run mapping (from YAML) with `--SECTION.FIELD` overrides into a validated RunConfig.

    Args:
        values: the run file's sections.
        overrides: `{"section.field": "text"}` from the command line.
        tokenizer_vocab_size: given the resolved DataConfig, the vocabulary size of its tokenizer;
            it replaces `model.vocab_size: tokenizer`.
        where: where `values` came from, for messages.
    """
    unknown = sorted(set(values) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {unknown}; sections are {', '.join(SECTIONS)}")
    sections = {name: dict(values.get(name) or {}) for name in SECTIONS}
    for key, text in overrides.items():
        section, _, name = key.partition(".")
        if section == "model" and name == "preset":
            sections["model"]["preset"] = text
            continue
        if section == "model" and name == "vocab_size" and text == VOCAB_FROM_TOKENIZER:
            sections["model"]["vocab_size"] = text
            continue
        cls = SECTIONS[section]
        sections[section][name] = parse_value(text, field_type(cls, name), where=f"--{key}")
    model_values = sections.pop("model")
    built = {name: config_from_dict(cls, sections[name], where=f"{where} ({name})") for name, cls in SECTIONS.items() if name != "model"}
    if model_values.get("vocab_size") == VOCAB_FROM_TOKENIZER:
        if tokenizer_vocab_size is None:
            raise ConfigError("model.vocab_size is 'tokenizer', which only a training run with data can resolve")
        model_values["vocab_size"] = tokenizer_vocab_size(built["data"])
    preset = model_values.pop("preset", None)
    if preset:
        model = ModelConfig.from_preset(preset, **model_values)
    else:
        model = ModelConfig.from_dict(model_values, where=f"{where} (model)")
    return RunConfig(model=model, **built)


def load_run_values(path: str | Path | None) -> dict[str, Any]:
    """The sections of a run YAML file (empty for None)."""
    if path is None:
        return {}
    values = load_yaml(path)
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: a run config is a mapping of sections")
    return values
