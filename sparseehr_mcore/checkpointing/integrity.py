"""What a checkpoint's files were when they were written: size and CRC32 of each, checked on load.

`record_files` writes `sparseehr_files.json` beside Megatron-Core's files once every rank has
finished writing and before the checkpoint's metadata marks it complete; `find_damage` compares the
files with it. A truncated, overwritten or missing file is found before Megatron-Core reads it,
and named, instead of surfacing as some error deep inside torch.distributed.checkpoint. A checkpoint
written before records existed gets what its own index allows: data files cut short are found.

The cost is one sequential read of the checkpoint by rank 0 when it is written and when it is
loaded (zlib's CRC32 ran at 2.3 GB/s on one shared CPU core here, so disk reads usually dominate).
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

from sparseehr_mcore.checkpointing.layout import METADATA_FILE

FILES_RECORD = "sparseehr_files.json"
_CHUNK_BYTES = 16 << 20


def crc32_of(path: Path) -> int:
    """CRC32 (zlib) of a file's bytes, read in chunks."""
    checksum = 0
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK_BYTES):
            checksum = zlib.crc32(chunk, checksum)
    return checksum


def record_files(directory: str | Path) -> None:
    """Write FILES_RECORD (atomically): size and CRC32 of every file under `directory` but the
    metadata file, which is written after it.

    Call on one process, after every rank has finished writing.
    """
    directory = Path(directory)
    not_recorded = {FILES_RECORD, METADATA_FILE}
    files = {
        path.relative_to(directory).as_posix(): {"bytes": path.stat().st_size, "crc32": crc32_of(path)}
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.relative_to(directory).as_posix() not in not_recorded
    }
    temporary = directory / (FILES_RECORD + ".tmp")
    temporary.write_text(json.dumps({"files": files}, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(temporary, directory / FILES_RECORD)


def find_damage(directory: str | Path) -> list[str]:
    """Each recorded file of `directory` that is missing or differs from when it was written, with
    how; empty when every file is as written.

    Sizes are compared first, so a truncated file costs no read. A checkpoint without a record
    (written before records existed) gets the check its own index allows: `_short_files`.
    """
    directory = Path(directory)
    record_path = directory / FILES_RECORD
    if not record_path.is_file():
        return _short_files(directory)
    try:
        recorded = json.loads(record_path.read_text(encoding="utf-8"))["files"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return [f"{record_path} is unreadable"]
    damage, present = [], []
    for name, expected in recorded.items():
        path = directory / name
        if not path.is_file():
            damage.append(f"{path} is missing")
        elif (size := path.stat().st_size) != expected["bytes"]:
            damage.append(f"{path} has {size:,} bytes, {expected['bytes']:,} when written")
        else:
            present.append((path, expected))
    if damage:
        return damage
    return [
        f"{path} differs from when it was written (CRC32)" for path, expected in present if crc32_of(path) != expected["crc32"]
    ]


def _short_files(directory: Path) -> list[str]:
    """The data files of a torch.distributed.checkpoint directory that end before the bytes its
    `.metadata` index places in them (a file cut short), or that are missing."""
    from torch.distributed.checkpoint import FileSystemReader

    if not (directory / ".metadata").is_file():
        return []
    try:
        index = FileSystemReader(str(directory)).read_metadata()
    except Exception as err:  # a damaged index raises whatever its unpickling meets
        return [f"{directory / '.metadata'} is unreadable ({type(err).__name__})"]
    needed: dict[str, int] = {}
    for place in index.storage_data.values():
        needed[place.relative_path] = max(needed.get(place.relative_path, 0), place.offset + place.length)
    damage = []
    for name, end in sorted(needed.items()):
        path = directory / name
        if not path.is_file():
            damage.append(f"{path} is missing")
        elif (size := path.stat().st_size) < end:
            damage.append(f"{path} has {size:,} bytes, its index places {end:,}")
    return damage
