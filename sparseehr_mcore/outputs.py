"""Output folders of the tools: checked before any compute, never a mix of old and foreign files.

Every tool that writes a folder (preprocessing, pretraining's save dir, the Hugging Face export and
import, the evaluation report) declares its own entries as an `OutputKind` and, before any
compute, calls `check_output_dir`:

* a path that is a file, or that cannot be created or written, is refused in one line
  (`OutputError`); the check really creates the missing folders and a probe file, then removes both,
  so permissions, read-only mounts and files in the way all show, and nothing is left behind;
* a folder holding entries the tool does not write (by name: `OutputKind.own`) is refused unless
  `overwrite`; the tool's own earlier outputs are not foreign (a rerun replaces them, and
  pretraining resumes from its own checkpoints).

On overwrite a tool either clears the folder first (`clear_output_dir`: preprocessing and
pretraining, which write in place) or writes into a sibling folder that replaces the old one in two
renames once it is complete (`staged_output`: the export and the evaluation), so that an interrupted
run leaves the old folder or the new one, never a half-written mix.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PROBE_PREFIX = ".write-probe-"
FOREIGN_SHOWN = 5  # names listed in the message; the rest are counted


class OutputError(Exception):
    """An output folder a tool must not or cannot write; the message says which and what to do."""


@dataclass(frozen=True, kw_only=True)
class OutputKind:
    """What one tool writes into its output folder.

    Args:
        flag: the flag naming the folder, for messages (`--output-dir`).
        own: shell patterns of the top-level entry names the tool writes.
        overwrite_flag: what the user passes to replace a folder holding other files.
    """

    flag: str
    own: tuple[str, ...]
    overwrite_flag: str = "--overwrite"

    def foreign_entries(self, folder: Path) -> list[str]:
        """The top-level entries of `folder` that the tool does not write, sorted."""
        return sorted(
            entry.name
            for entry in folder.iterdir()
            if not any(fnmatch.fnmatchcase(entry.name, pattern) for pattern in self.own)
        )


def check_output_dir(path: str | Path, *, kind: OutputKind, overwrite: bool, probe: bool = True) -> None:
    """Refuse, before any compute, an output folder the tool cannot write or must not mix into.

    Args:
        path: the output folder (created later by the tool; absent is fine).
        kind: the tool's outputs.
        overwrite: whether entries the tool does not write may be replaced.
        probe: create the folder and a file in it (then remove both); False checks permissions
            only, for processes that must not race another one's probe (pretraining's ranks > 0).

    Raises:
        OutputError: one line naming the folder, the reason and the way out.
    """
    path = Path(path)
    where = f"{kind.flag} {path}"
    if path.exists() and not path.is_dir():
        raise OutputError(f"{where} is a file, not a folder")
    if path.is_dir() and not overwrite:
        foreign = kind.foreign_entries(path)
        if foreign:
            shown = ", ".join(foreign[:FOREIGN_SHOWN]) + (f" and {len(foreign) - FOREIGN_SHOWN} more" if len(foreign) > FOREIGN_SHOWN else "")
            raise OutputError(
                f"{where} holds files this tool did not write ({shown}): pass {kind.overwrite_flag} to replace "
                "the folder's contents, or choose another folder"
            )
    existing = next(parent for parent in [path, *path.absolute().parents] if parent.exists() or parent.is_symlink())
    if not existing.is_dir():
        raise OutputError(f"{where}: cannot create it ({existing} is a file)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{where}: cannot {'write in' if existing == path else 'create'} it ({existing} is not writable)")
    if probe:
        _probe(path, where=where)


def _probe(path: Path, *, where: str) -> None:
    """Create the missing folders of `path` and a file in it, then remove what was created."""
    missing = []
    parent = path.absolute()
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    created: list[Path] = []
    try:
        for folder in reversed(missing):
            folder.mkdir()
            created.append(folder)
        handle, probe_file = tempfile.mkstemp(prefix=PROBE_PREFIX, dir=path)
        os.close(handle)
        os.unlink(probe_file)
    except OSError as err:
        raise OutputError(f"{where}: cannot write there ({err.strerror}: {err.filename})") from None
    finally:
        for folder in reversed(created):
            folder.rmdir()


def clear_output_dir(path: str | Path) -> None:
    """Remove everything inside `path` (kept itself, so that a mount point or a link stays)."""
    path = Path(path)
    if not path.is_dir():
        return
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


@contextmanager
def staged_output(path: str | Path) -> Iterator[Path]:
    """A fresh sibling folder to write the outputs into; on success it replaces `path`.

    The old folder (already checked with `check_output_dir`) is renamed aside, the new one renamed
    into place and the old one removed: at any moment `path` is the complete old folder, absent for
    an instant, or the complete new one. On an error the sibling is removed and `path` is untouched.
    """
    path = Path(path).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkdir, not mkdtemp: the folder that stays gets the umask's permissions, not 0700.
    staging, old = (path.parent / f".{path.name}.{state}-{os.getpid()}" for state in ("partial", "old"))
    shutil.rmtree(staging, ignore_errors=True)  # left by an earlier process of the same id
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    replaced = path.exists()
    if replaced:
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    os.replace(staging, path)
    if replaced:
        shutil.rmtree(old)
