"""The checkpoint directory layout shared by training, resuming and Hugging Face conversion.

```
ROOT/                               the --save directory of a run
  latest_iteration.txt              the newest complete checkpoint's iteration ("20")
  iter_0000020/                     one checkpoint
    sparseehr_checkpoint.yaml       written last: its presence marks the checkpoint complete
    <dist_checkpointing files>      {"model": ..., and for training checkpoints "optimizer", "rng", ...}
    tokenizer/                      the tokenizer the model was trained with (when known)
```

`sparseehr_checkpoint.yaml` holds the ModelConfig, the parallel layout it was saved under, the
iteration and the format version. Any path to ROOT or to one `iter_*` directory resolves to a
checkpoint.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sparseehr_mcore.config import ConfigError, ModelConfig, ParallelConfig

FORMAT_VERSION = 1
METADATA_FILE = "sparseehr_checkpoint.yaml"
LATEST_FILE = "latest_iteration.txt"
TOKENIZER_DIR = "tokenizer"


_ITERATION_DIR = re.compile(r"iter_(\d+)")


def iteration_dir(root: str | Path, iteration: int) -> Path:
    return Path(root) / f"iter_{iteration:07d}"


def complete_checkpoints(root: str | Path) -> dict[int, Path]:
    """The complete `iter_*` checkpoints under ROOT (metadata file present), by iteration, oldest first.

    An `iter_*` directory without the metadata file is an interrupted save: it is no checkpoint.
    """
    found = {}
    for path in Path(root).glob("iter_*"):
        match = _ITERATION_DIR.fullmatch(path.name)
        if match and path.is_dir() and (path / METADATA_FILE).is_file():
            found[int(match.group(1))] = path
    return dict(sorted(found.items()))


def prune_checkpoints(root: str | Path, *, keep_last: int, keep: int | None = None) -> list[Path]:
    """Delete complete checkpoints under ROOT beyond the `keep_last` newest (0 keeps all).

    Only complete checkpoints count and only they are deleted: an interrupted save neither takes a
    place among the `keep_last` (which would cost a good checkpoint) nor is removed (a later save of
    the same iteration replaces it). The checkpoint of iteration `keep` (the one just saved, which
    `latest_iteration.txt` names) is kept even when newer ones exist.

    Returns:
        The deleted directories.
    """
    if keep_last <= 0:
        return []
    complete = complete_checkpoints(root)
    doomed = [path for iteration, path in list(complete.items())[:-keep_last] if iteration != keep]
    for path in doomed:
        shutil.rmtree(path)
    return doomed


@dataclass(kw_only=True)
class CheckpointMetadata:
    """What a checkpoint directory says about itself."""

    model: ModelConfig
    parallel: ParallelConfig  # the layout it was saved under (it loads under any compatible one)
    iteration: int
    kind: str = "training"  # "training" (weights + optimizer + RNG) or "weights"
    world_size: int | None = None  # processes that saved it (RNG states are per process)
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "kind": self.kind,
            "iteration": self.iteration,
            "world_size": self.world_size,
            "model": self.model.to_dict(),
            "parallel": self.parallel.to_dict(),
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, where: str) -> "CheckpointMetadata":
        version = values.get("format_version")
        if version != FORMAT_VERSION:
            raise ConfigError(f"{where}: checkpoint format version {version!r}, this code reads {FORMAT_VERSION}")
        return cls(
            model=ModelConfig.from_dict(values["model"], where=f"{where} (model)"),
            parallel=ParallelConfig.from_dict(values["parallel"], where=f"{where} (parallel)"),
            iteration=int(values["iteration"]),
            kind=values.get("kind", "training"),
            world_size=values.get("world_size"),
        )


def write_metadata(directory: str | Path, metadata: CheckpointMetadata) -> None:
    """Write the metadata file atomically: a reader sees no file or a whole one."""
    path = Path(directory) / METADATA_FILE
    temporary = path.with_suffix(".tmp")
    temporary.write_text(yaml.safe_dump(metadata.to_dict(), sort_keys=False), encoding="utf-8")
    os.replace(temporary, path)


def read_metadata(directory: str | Path) -> CheckpointMetadata:
    path = Path(directory) / METADATA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{directory} is not a complete SparseEHR checkpoint (no {METADATA_FILE})")
    return CheckpointMetadata.from_dict(yaml.safe_load(path.read_text(encoding="utf-8")), where=str(path))


def mark_latest(root: str | Path, iteration: int) -> None:
    """Point ROOT/latest_iteration.txt at `iteration` (atomically)."""
    path = Path(root) / LATEST_FILE
    temporary = path.with_suffix(".tmp")
    temporary.write_text(f"{iteration}\n", encoding="utf-8")
    os.replace(temporary, path)


def latest_iteration(root: str | Path) -> int | None:
    """The newest complete checkpoint's iteration under ROOT, or None when there is none."""
    path = Path(root) / LATEST_FILE
    if not path.is_file():
        return None
    return int(path.read_text(encoding="utf-8").strip())


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint directory that `path` names: itself if it is one, else ROOT's latest.

    Raises:
        FileNotFoundError: with the reason, when `path` holds no complete checkpoint.
    """
    path = Path(path)
    if (path / METADATA_FILE).is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint path {path} does not exist")
    iteration = latest_iteration(path)
    if iteration is None:
        raise FileNotFoundError(f"{path} holds no checkpoint (neither {METADATA_FILE} nor {LATEST_FILE})")
    directory = iteration_dir(path, iteration)
    if not (directory / METADATA_FILE).is_file():
        raise FileNotFoundError(f"{path}/{LATEST_FILE} names iteration {iteration}, but {directory} is incomplete")
    return directory
