r"""Command-line flags for config fields: `--SECTION.FIELD VALUE`, one per dataclass field.

A flag's metavar says exactly what it accepts, derived from the field's annotation, and the parser
accepts exactly that:

| annotation | metavar | accepted |
|---|---|---|
| `int` | `INT` | an integer (`20`) |
| `float` | `FLOAT` | any number (`3e-4`, `0.1`, `2`) |
| `bool` | `{true,false}` | YAML booleans (`true`, `false`, `yes`, `no`, `on`, `off`) |
| `str` | `STR` | the text as given |
| `list[T]` | `[T,...]` | a YAML flow list (`[a, b]`, `[0.7, 0.3]`) or one value (`a`), each element a `T` |
| `X \| None` | `...\|null` | also `null`: the field's default meaning ("unset") |

Special values a field accepts beyond its type are named in its metavar (`model.vocab_size` takes
`tokenizer`). This module imports neither torch nor Megatron-Core: `--help` stays instant.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any

import yaml

from sparseehr_mcore.config.base import ConfigError

NULL = "null"
# Values a field accepts besides its annotated type (resolved by resolve_run_config).
SPECIAL_VALUES: dict[str, tuple[str, ...]] = {"model.vocab_size": ("tokenizer",)}
_SCALAR_NAMES = {int: "INT", float: "FLOAT", bool: "{true,false}", str: "STR"}


def field_type(cls: type, name: str) -> Any:
    return typing.get_type_hints(cls)[name]


def _kinds(annotation: Any) -> tuple[list[Any], bool]:
    """The non-None types an annotation allows, and whether it allows None."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        return [a for a in args if a is not type(None)], type(None) in args
    return [annotation], False


def metavar(annotation: Any, *, special: tuple[str, ...] = ()) -> str:
    """What a flag of this type accepts, e.g. `FLOAT`, `[STR,...]`, `INT|null`, `INT|tokenizer`."""
    kinds, optional = _kinds(annotation)
    names = []
    for kind in kinds:
        if typing.get_origin(kind) is list:
            (element,) = typing.get_args(kind)
            names.append(f"[{_SCALAR_NAMES[element]},...]")
        else:
            names.append(_SCALAR_NAMES[kind])
    return "|".join([*names, *special, *([NULL] if optional else [])])


def _scalar(value: Any, text: str, kind: type) -> Any:
    """`value` (YAML-parsed `text`) as `kind`, or raise ValueError."""
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            return float(text)  # YAML 1.1 reads "3e-4" (no dot) as a string
    elif kind is str:
        return text if not isinstance(value, str) else value
    raise ValueError(text)


def parse_value(text: str, annotation: Any, *, where: str) -> Any:
    """Turn a command-line string into a value of the field's declared type.

    Raises:
        ConfigError: naming the flag and what it accepts.
    """
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    kinds, optional = _kinds(annotation)
    if optional and value is None:
        return None
    for kind in kinds:
        try:
            if typing.get_origin(kind) is list:
                (element,) = typing.get_args(kind)
                items = value if isinstance(value, list) else [value]
                return [_scalar(item, item if isinstance(item, str) else str(item), element) for item in items]
            return _scalar(value, text, kind)
        except (ValueError, TypeError):
            continue
    raise ConfigError(f"{where}: cannot read {text!r} as {metavar(annotation)}")


def add_config_flags(parser: argparse.ArgumentParser, sections: dict[str, type]) -> None:
    """Add `--SECTION.FIELD` for every init field of every section's dataclass, with its help text
    (the class's `HELP` mapping) and a metavar true to its type."""
    for section, cls in sections.items():
        group = parser.add_argument_group(f"{section} ({cls.__name__})")
        for spec in dataclasses.fields(cls):
            if not spec.init:
                continue
            key = f"{section}.{spec.name}"
            group.add_argument(
                f"--{key}",
                dest=key,
                metavar=metavar(field_type(cls, spec.name), special=SPECIAL_VALUES.get(key, ())),
                default=argparse.SUPPRESS,
                help=getattr(cls, "HELP", {}).get(spec.name, ""),
            )
