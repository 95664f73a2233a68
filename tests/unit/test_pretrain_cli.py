"""examples/pretrain_sparseehr.py as a command: `--help` is instant, every flag's metavar is true to
its field's type, and the parser accepts what the metavar says."""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
import typing
from pathlib import Path

import pytest

from sparseehr_mcore.config import ConfigError
from sparseehr_mcore.config.flags import field_type, parse_value
from sparseehr_mcore.config.run import SECTIONS, build_override_parser, resolve_run_config

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "pretrain_sparseehr.py"
# Loads the script as a module, asks it for --help, and reports which heavy libraries got imported.
HELP_PROBE = f"""
import json, runpy, sys
main = runpy.run_path({str(SCRIPT)!r}, run_name="probe")["main"]
try:
    main(["--help"])
except SystemExit as done:
    code = done.code
print(json.dumps({{"code": code, "imported": sorted(m for m in ("torch", "megatron") if m in sys.modules)}}))
"""


def test_help_answers_at_once_without_importing_megatron_or_torch():
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", HELP_PROBE], capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"code": 0, "imported": []}
    assert "--data.weights [FLOAT,...]|null" in done.stdout
    assert elapsed < 2.0, f"--help took {elapsed:.2f} s"


def flags() -> dict[str, argparse.Action]:
    parser = argparse.ArgumentParser()
    build_override_parser(parser)
    return {action.dest: action for action in parser._actions if "." in action.dest}


def sample_texts(metavar: str) -> list[str]:
    """Command-line values written the way a metavar says they may be."""
    samples = {"INT": ["7"], "FLOAT": ["3e-4", "0.5", "2"], "{true,false}": ["false", "true"], "STR": ["some/path"],
               "[INT,...]": ["[1, 2]", "3"], "[FLOAT,...]": ["[0.7, 0.3]", "[1e-3, 2]", "0.5"],
               "[STR,...]": ["[a, b/c]", "one"], "null": ["null"]}  # fmt: skip
    return [text for part in metavar.split("|") for text in samples.get(part, [])]


def conforms(value, annotation) -> bool:
    kinds = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, type(int | None)) else (annotation,)
    for kind in kinds:
        if kind is type(None) and value is None:
            return True
        if typing.get_origin(kind) is list and isinstance(value, list):
            (element,) = typing.get_args(kind)
            return all(type(item) is element for item in value)
        if kind is not type(None) and type(value) is kind:
            return True
    return False


def test_every_metavar_is_true_to_its_fields_type():
    actions = flags()
    checked = 0
    for section, cls in SECTIONS.items():
        for spec in dataclasses.fields(cls):
            if not spec.init:
                continue
            key = f"{section}.{spec.name}"
            annotation = field_type(cls, spec.name)
            texts = sample_texts(actions[key].metavar)
            assert texts, f"--{key}: metavar {actions[key].metavar!r} names no type"
            for text in texts:
                value = parse_value(text, annotation, where=f"--{key}")
                assert conforms(value, annotation), f"--{key} {text}: {value!r} is not a {annotation}"
                checked += 1
    assert checked > 60


@pytest.mark.parametrize(
    "key, metavar",
    [
        ("train.lr", "FLOAT"),
        ("train.lr_decay_iters", "INT|null"),
        ("train.distributed_optimizer", "{true,false}|null"),
        ("data.weights", "[FLOAT,...]|null"),
        ("data.preprocessed_dirs", "[STR,...]"),
        ("model.vocab_size", "INT|tokenizer"),
        ("model.preset", "{paper,small,tiny}"),
    ],
)
def test_metavars_say_what_a_flag_takes(key, metavar):
    assert flags()[key].metavar == metavar


def test_values_are_read_as_their_metavar_says():
    parser = argparse.ArgumentParser()
    build_override_parser(parser)
    argv = ["--train.lr", "3e-4", "--data.weights", "3", "--data.preprocessed_dirs", "one",
            "--train.lr_decay_iters", "null", "--model.vocab_size", "300"]  # fmt: skip
    run = resolve_run_config({"model": {"preset": "tiny"}}, vars(parser.parse_args(argv)))
    assert run.train.lr == 3e-4 and run.train.lr_decay_iters is None and run.model.vocab_size == 300
    assert run.data.weights == [3.0] and type(run.data.weights[0]) is float
    assert run.data.preprocessed_dirs == ["one"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--data.weights", "[0.7, heavy]"], r"--data.weights: cannot read '\[0.7, heavy\]' as \[FLOAT,...\]\|null"),
        (["--train.train_iters", "2.5"], r"--train.train_iters: cannot read '2.5' as INT"),
        (["--checkpoint.load_optimizer", "1"], r"cannot read '1' as \{true,false\}"),
    ],
)
def test_values_of_another_type_are_refused_with_what_the_flag_takes(argv, message):
    parser = argparse.ArgumentParser()
    build_override_parser(parser)
    with pytest.raises(ConfigError, match=message):
        resolve_run_config({"model": {"preset": "tiny"}}, vars(parser.parse_args(argv)))
