"""Run configs: YAML sections, command-line overrides generated from the dataclasses, clear errors."""

from __future__ import annotations

import argparse
import re

import pytest

from sparseehr_mcore.config import ConfigError
from sparseehr_mcore.config.run import SECTIONS, build_override_parser, resolve_run_config


def overrides(*argv: str) -> dict[str, str]:
    parser = argparse.ArgumentParser()
    build_override_parser(parser)
    return vars(parser.parse_args(list(argv)))


def test_every_field_of_every_section_is_a_flag_with_help():
    parser = argparse.ArgumentParser()
    build_override_parser(parser)
    flags = {action.dest: action.help for action in parser._actions if "." in action.dest}
    import dataclasses

    for section, cls in SECTIONS.items():
        for spec in dataclasses.fields(cls):
            assert flags[f"{section}.{spec.name}"], f"--{section}.{spec.name} has no help text"


def test_yaml_values_and_overrides_merge_with_types():
    values = {"model": {"preset": "tiny"}, "train": {"train_iters": 50, "lr": 1e-3}}
    run = resolve_run_config(
        values,
        overrides("--train.train_iters", "20", "--parallel.tensor_model_parallel_size", "2", "--data.weights", "[1, 3]",
                  "--data.preprocessed_dirs", "[a, b]", "--checkpoint.load_optimizer", "false", "--model.dense_prefix_layers", "1"),
    )  # fmt: skip
    assert run.train.train_iters == 20 and run.train.lr == 1e-3
    assert run.parallel.tensor_model_parallel_size == 2
    assert run.data.weights == [1.0, 3.0] and run.data.preprocessed_dirs == ["a", "b"]
    assert run.checkpoint.load_optimizer is False
    assert run.model.name == "tiny" and run.model.dense_prefix_layers == 1


def test_vocab_size_from_the_tokenizer():
    run = resolve_run_config(
        {"model": {"preset": "tiny", "vocab_size": "tokenizer"}, "data": {"tokenizer_dir": "tok"}},
        {},
        tokenizer_vocab_size=lambda data: 100 if data.tokenizer_dir == "tok" else -1,
    )
    assert run.model.vocab_size == 100 and run.model.padded_vocab_size == 128
    with pytest.raises(ConfigError, match="only a training run with data can resolve"):
        resolve_run_config({"model": {"preset": "tiny", "vocab_size": "tokenizer"}}, {})


@pytest.mark.parametrize(
    "values, argv, message",
    [
        ({"modle": {}}, [], r"unknown section\(s\) \['modle'\]"),
        ({"model": {"preset": "tiny"}, "train": {"train_itres": 3}}, [], "did you mean 'train_iters'"),
        ({"model": {"preset": "tiny"}}, ["--train.train_iters", "many"], "cannot read 'many'"),
        ({"model": {"preset": "tiny"}}, ["--train.global_batch_size", "6", "--train.micro_batch_size", "4"], "must be a multiple of micro_batch_size"),
        ({"model": {"preset": "tiny"}}, ["--train.warmup_iters", "200"], r"warmup_iters \(200\) must be smaller"),
        ({"model": {"preset": "tiny"}}, ["--data.weights", "[1]"], "weights has 1 entries for 0 preprocessed_dirs"),
        ({"model": {"preset": "tiny"}}, ["--train.precision", "fp16"], "precision must be auto, fp32, bf16 or fp8"),
    ],
)
def test_bad_run_configs_fail_with_the_reason(values, argv, message):
    with pytest.raises(ConfigError, match=message):
        resolve_run_config(values, overrides(*argv))


def test_problems_of_every_section_and_the_layout_are_listed_at_once():
    """A training-section error must not hide the model's and the layout's (issue 13, item 4)."""
    values = {
        "model": {"preset": "tiny", "router_topk": 8},  # more than the 4 experts
        "parallel": {"pipeline_model_parallel_size": 3},  # does not divide the 4 layers
        "train": {"train_iters": 10, "warmup_iters": 10},
        "checkpoint": {"keep_last": -1},
    }
    with pytest.raises(ConfigError) as caught:
        resolve_run_config(values, overrides("--logging.log_interval", "often"), world_size=6, where="run.yaml")
    message = str(caught.value)
    expected = [
        r"train: .*warmup_iters \(10\) must be smaller",
        r"model: .*router_topk \(8\) must be between 1 and num_experts \(4\)",
        r"parallel: pipeline parallel size 3 must divide num_layers \(4\)",
        "checkpoint: save_interval and keep_last must be >= 0",
        r"logging: --logging.log_interval: cannot read 'often'",
    ]
    for pattern in expected:
        assert re.search(pattern, message), (pattern, message)
    assert message.startswith(f"run.yaml: {len(caught.value.problems)} problems:")
    assert len(caught.value.problems) == len(expected)


def test_the_batch_split_is_checked_against_the_world_size():
    values = {"model": {"preset": "tiny"}, "train": {"global_batch_size": 8, "micro_batch_size": 4}}
    assert resolve_run_config(values, {}, world_size=2).train.global_batch_size == 8
    with pytest.raises(ConfigError, match=r"multiple of micro_batch_size x data-parallel size \(4 x 4\)"):
        resolve_run_config(values, {}, world_size=4)
