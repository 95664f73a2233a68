"""Find a source's table files under `--input` from the source's `TableLayout` declaration.

`--input` may be the folder holding the tables or the release folder as downloaded (MIMIC-IV's root
with `hosp/`, a MEDS root with `data/`): each source declares where its tables may live, and this
module tries those places in order. A failure names every table looked for and every place looked in.
"""

from __future__ import annotations

from pathlib import Path

from sparseehr_mcore.data.ledger import PreprocessError
from sparseehr_mcore.data.reading import CSV_SUFFIXES, PARQUET_SUFFIXES, find_table_file
from sparseehr_mcore.data.sources.base import SourceReader

Table = tuple[str, str, Path]  # (spec name, ledger table name, file)
LISTED_NAMES = 12  # entries of a folder named in an error message


def find_tables(reader: SourceReader, input_dir: Path) -> list[Table]:
    """(spec name, ledger table name, file) for every table of `reader` found under `input_dir`.

    Raises:
        PreprocessError: no declared folder holds the tables; the message lists where it looked.
    """
    input_dir = Path(input_dir)
    folders = [input_dir / folder if folder else input_dir for folder in reader.layout.folders]
    if reader.layout.shards is not None:
        return _find_shards(reader, input_dir, folders)
    required = [spec.name for spec in reader.tables if spec.name not in reader.optional_tables]
    missing_by_folder = []
    for folder in folders:
        found = {spec.name: find_table_file(folder, spec.name) if folder.is_dir() else None for spec in reader.tables}
        missing = [name for name in required if found[name] is None]
        if not missing:
            return [(name, name, path) for name, path in found.items() if path is not None]
        missing_by_folder.append(missing)
    fewest = min(missing_by_folder, key=len)  # the folder closest to holding them all says what is absent
    suffixes = ", ".join(s for s in CSV_SUFFIXES + PARQUET_SUFFIXES)
    raise PreprocessError(
        f"--input {input_dir}: no {', '.join(fewest)} table{'s' if len(fewest) > 1 else ''} for --source "
        f"{reader.name} (file stem + {suffixes}, any case); looked in {_places(folders)}"
    )


def _find_shards(reader: SourceReader, input_dir: Path, folders: list[Path]) -> list[Table]:
    (spec,) = reader.tables
    for folder in folders:
        paths = sorted(folder.glob(reader.layout.shards)) if folder.is_dir() else []
        if paths:
            return [(spec.name, str(path.relative_to(input_dir)), path) for path in paths]
    raise PreprocessError(
        f"--input {input_dir}: no {reader.layout.shards} files for --source {reader.name}; "
        f"looked in {_places(folders)}"
    )


def _places(folders: list[Path]) -> str:
    """Each folder with what it holds, e.g. `/in (has LICENSE.txt, hosp); /in/hosp (absent)`."""
    described = []
    for folder in folders:
        if not folder.is_dir():
            described.append(f"{folder} (absent)")
            continue
        names = sorted(path.name + ("/" if path.is_dir() else "") for path in folder.iterdir())
        listed = ", ".join(names[:LISTED_NAMES]) or "nothing"
        if len(names) > LISTED_NAMES:
            listed += f" and {len(names) - LISTED_NAMES} more"
        described.append(f"{folder} (has {listed})")
    return "; ".join(described)
