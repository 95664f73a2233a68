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
    world_size: int | None = None,
    where: str = "",
) -> RunConfig:
    """Merge a run mapping (from YAML) with `--SECTION.FIELD` overrides into a validated RunConfig.

    Every section is checked, and then the layout against the model (and `world_size`), before
    anything is raised: one ConfigError lists the problems of every section, each prefixed with its
    section, so that fixing one does not merely reveal the next.

    Args:
        values: the run file's sections.
        overrides: `{"section.field": "text"}` from the command line.
        tokenizer_vocab_size: given the resolved DataConfig, the vocabulary size of its tokenizer;
            it replaces `model.vocab_size: tokenizer`.
        world_size: the number of processes the run will have, for the layout checks (None: the
            layout is checked against the model only; the process-group setup checks it again).
        where: where `values` came from, for messages.
    """
    problems: list[str] = []

    def attempt(section: str, make: Callable[[], Any]) -> Any:
        try:
            return make()
        except ConfigError as err:
            problems.extend(f"{section}: {problem}" for problem in err.problems)
            return None

    unknown = sorted(set(values) - set(SECTIONS))
    if unknown:
        problems.append(f"unknown section(s) {unknown}; sections are {', '.join(SECTIONS)}")
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
        # In a tuple, since None is a value a flag may give; an unreadable flag is reported and its
        # section checked without it.
        parsed = attempt(section, lambda: (parse_value(text, field_type(cls, name), where=f"--{key}"),))
        if parsed is not None:
            sections[section][name] = parsed[0]
    model_values = sections.pop("model")
    built = {
        name: attempt(name, lambda: config_from_dict(cls, sections[name], where=f"{where} ({name})"))
        for name, cls in SECTIONS.items()
        if name != "model"
    }
    vocab_known = True
    if model_values.get("vocab_size") == VOCAB_FROM_TOKENIZER:
        vocab_size = None
        if tokenizer_vocab_size is None:
            problems.append("model: vocab_size is 'tokenizer', which only a training run with data can resolve")
        elif built["data"] is not None:
            vocab_size = attempt("data", lambda: _vocab_size(tokenizer_vocab_size, built["data"]))
        # Without the vocabulary the model is not checked: its problem is already listed.
        vocab_known = vocab_size is not None
        model_values["vocab_size"] = vocab_size
    model = attempt("model", lambda: _model_config(model_values, where=where)) if vocab_known else None
    # The layout is checked against the model even when the model has problems of its own (the
    # unchecked config), so that fixing the model does not merely reveal the layout's problems.
    layout_model = model if model is not None or not vocab_known else _unchecked_model(model_values)
    if built["parallel"] is not None:
        attempt("parallel", lambda: _check_layout(built["parallel"], layout_model, world_size))
    if not problems and world_size is not None:
        dp_size = built["parallel"].data_parallel_size(world_size)
        attempt("train", lambda: built["train"].micro_batches_per_step(data_parallel_size=dp_size))
    if len(problems) == 1:
        raise ConfigError(f"{where or 'run config'}: {problems[0]}", problems=problems)
    if problems:
        raise ConfigError(f"{where or 'run config'}: {len(problems)} problems:\n  - " + "\n  - ".join(problems), problems=problems)
    return RunConfig(model=model, **built)


def _vocab_size(tokenizer_vocab_size: Callable[[DataConfig], int], data: DataConfig) -> int:
    try:
        return tokenizer_vocab_size(data)
    except FileNotFoundError as err:  # a missing tokenizer is a data-section problem like any other
        raise ConfigError(str(err)) from None


def _model_config(values: dict[str, Any], *, where: str) -> ModelConfig:
    values = dict(values)
    preset = values.pop("preset", None)
    if preset:
        return ModelConfig.from_preset(preset, **values)
    return ModelConfig.from_dict(values, where=f"{where} (model)")


def _unchecked_model(values: dict[str, Any]) -> ModelConfig | None:
    """The model section as an unchecked ModelConfig, to check the layout against; None when its
    fields cannot make one (unknown keys or preset, missing fields) or its sizes are not positive
    integers (the layout checks divide by them). Its own problems are reported by `_model_config`."""
    values = dict(values)
    preset = values.pop("preset", None)
    if preset is not None:
        values = {**PRESETS.get(preset, {}), **values}
    try:
        model = ModelConfig(**values, check=False)
    except TypeError:
        return None
    return None if model.size_problems() else model


def _check_layout(parallel: ParallelConfig, model: ModelConfig | None, world_size: int | None) -> None:
    try:
        parallel.validate(model, world_size)
    except TypeError:  # a model field of the wrong type (reported as a model problem): layout alone
        parallel.validate(None, world_size)


def load_run_values(path: str | Path | None) -> dict[str, Any]:
    """The sections of a run YAML file (empty for None)."""
    if path is None:
        return {}
    values = load_yaml(path)
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: a run config is a mapping of sections")
    return values
