"""YAML in and out for the config dataclasses, rejecting unknown keys with a message that lists the
known ones (a typo in a config file must never be silently ignored)."""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration that cannot work, with a message that says what to change.

    `problems` holds each problem on its own (the message alone when not given), so that a caller
    checking several sections can list every problem of every section in one message.
    """

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems) if problems else [message]


def raise_problems(problems: list[str], owner: str) -> None:
    """Raise one ConfigError listing `problems` of `owner` (a config class), if there are any."""
    if problems:
        raise ConfigError(f"{owner} is invalid:\n  - " + "\n  - ".join(problems), problems=problems)


def config_from_dict(cls: type[T], values: dict[str, Any], *, where: str = "") -> T:
    """Build dataclass `cls` from a mapping, rejecting keys that are not fields of `cls`.

    Args:
        cls: a dataclass type.
        values: field values; missing fields take their defaults.
        where: where the values came from (a file name), for error messages.
    """
    if not isinstance(values, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping of fields, got {type(values).__name__}")
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - fields)
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, fields, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(
            f"{where or cls.__name__}: unknown {cls.__name__} key(s) {', '.join(hints)}; "
            f"known keys: {', '.join(sorted(fields))}"
        )
    try:
        return cls(**values)
    except TypeError as err:  # a required field is missing
        raise ConfigError(f"{where or cls.__name__}: {err}") from None


def config_to_dict(config: Any) -> dict[str, Any]:
    """The init fields of a config dataclass as a plain dict (YAML-safe values only)."""
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.init}


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from `path` with a clear error for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    return values or {}


def dump_yaml(values: dict[str, Any], path: str | Path) -> None:
    """Write a mapping as YAML in field order (stable bytes for the same config)."""
    Path(path).write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")
