"""Deterministic safetensors shards in the Hugging Face layout, and reading them back.

Same tensors in, same bytes out: keys in sorted order, shards cut greedily at a fixed size in that
order, the only file metadata `{"format": "pt"}`, and the index written with sorted keys.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from sparseehr_mcore.export.kinds import ConversionError

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
DEFAULT_SHARD_BYTES = 2 * 1024**3


def _nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def write_shards(
    tensors: dict[str, torch.Tensor], directory: str | Path, *, max_shard_bytes: int = DEFAULT_SHARD_BYTES
) -> list[str]:
    """Write `tensors` as one `model.safetensors` or as numbered shards plus an index.

    Returns:
        The shard file names, in order.
    """
    directory = Path(directory)
    shards: list[list[str]] = [[]]
    size = 0
    for name in sorted(tensors):
        nbytes = _nbytes(tensors[name])
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += nbytes
    if len(shards) == 1:
        files = [SINGLE_FILE]
    else:
        files = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    progress = tqdm(zip(files, shards), total=len(files), desc="writing shards", unit="shard", disable=len(files) < 2)
    for file_name, names in progress:
        shard = {name: tensors[name].contiguous() for name in names}
        save_file(shard, str(directory / file_name), metadata={"format": "pt"})
    if len(files) > 1:
        index = {
            "metadata": {"total_size": sum(_nbytes(t) for t in tensors.values())},
            "weight_map": {name: file for file, names in zip(files, shards) for name in names},
        }
        (directory / INDEX_FILE).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return files


def read_shards(directory: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of a Hugging Face folder (single file or indexed shards).

    Raises:
        ConversionError: no safetensors weights in `directory`, or a key appears in two shards.
    """
    directory = Path(directory)
    if (directory / INDEX_FILE).is_file():
        weight_map = json.loads((directory / INDEX_FILE).read_text(encoding="utf-8"))["weight_map"]
        files = sorted(set(weight_map.values()))
    elif (directory / SINGLE_FILE).is_file():
        files = [SINGLE_FILE]
    else:
        raise ConversionError(f"{directory} has no {SINGLE_FILE} or {INDEX_FILE}")
    tensors: dict[str, torch.Tensor] = {}
    for file_name in files:
        with safe_open(str(directory / file_name), framework="pt") as handle:
            for name in handle.keys():
                if name in tensors:
                    raise ConversionError(f"{name} appears in more than one shard of {directory}")
                tensors[name] = handle.get_tensor(name)
    return tensors
