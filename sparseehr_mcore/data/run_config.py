"""The preprocessing run's configuration and the objects it builds (reader, harmoniser, tables)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from sparseehr_mcore.data.harmonize.gems import (
    load_cms_gems,
    load_cms_reverse_gems,
    load_package_diagnosis_gem,
    load_package_reverse_diagnosis_gem,
)
from sparseehr_mcore.data.harmonize.rules import Harmoniser, HarmonizeConfig
from sparseehr_mcore.data.ledger import PreprocessError
from sparseehr_mcore.data.layout import find_tables
from sparseehr_mcore.data.sources.base import MAX_AGE, DateLimits, SourceReader
from sparseehr_mcore.data.sources.registry import SOURCES

WORK_DIR = ".work"
TOKENIZER_DIR = "tokenizer"
TIMELINES_DIR = "timelines"  # the built timelines, kept in the output for re-tokenizing (docs/data.md)


@dataclass(frozen=True, kw_only=True)
class PreprocessConfig:
    """Everything one preprocessing run depends on (flags of tools/preprocess_ehr.py)."""

    source: str
    input_dir: Path
    output_dir: Path
    strict: bool = False
    tokenizer_dir: Path | None = None
    tokenizer: str = "typed-codes"
    min_count: int = 1
    bundle_order: str | None = None  # None: sorted for a new vocabulary, the reused tokenizer's otherwise
    gem_dir: Path | None = None
    reverse_gem: bool = True
    icd10cm_prefix: int = 4
    icd10pcs_prefix: int = 4
    diagnosis_date: str = "discharge"
    min_year: int = 1850
    max_year: int = 2250
    max_age: int = MAX_AGE
    extra_code_systems: tuple[str, ...] = ()
    seed: int = 1234
    split_fractions: tuple[float, float, float] = (0.9, 0.05, 0.05)
    workers: int = 1
    num_shards: int = 1
    bucket_bytes: int = 64 << 20
    part_bytes: int = 32 << 20
    keep_work: bool = False
    progress: bool = False
    overwrite: bool = False  # replace an output folder holding files the run does not write

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise PreprocessError(f"--source {self.source!r}: choose one of {', '.join(SOURCES)}")
        if not Path(self.input_dir).is_dir():
            raise PreprocessError(f"--input {self.input_dir}: not a directory")
        if self.bundle_order not in (None, "sorted", "frequency", "shuffled"):
            raise PreprocessError(f"--bundle-order {self.bundle_order!r}: choose sorted, frequency or shuffled")
        if self.min_count < 1:
            raise PreprocessError(f"--min-count must be >= 1, got {self.min_count}")
        if self.workers < 1 or self.num_shards < 1:
            raise PreprocessError("--workers and --num-shards must be >= 1")
        if not 1 <= self.min_year <= self.max_year <= 9999:
            raise PreprocessError(
                f"--min-year {self.min_year} and --max-year {self.max_year}: need 1 <= min-year <= max-year <= 9999"
            )
        if self.max_age < 0:
            raise PreprocessError(f"--max-age must be >= 0, got {self.max_age}")
        if self.bucket_bytes < 1:
            raise PreprocessError("--bucket-mb must be > 0")
        if self.part_bytes < 1:
            raise PreprocessError("--part-mb must be > 0")
        if len(self.split_fractions) != 3 or abs(sum(self.split_fractions) - 1) > 1e-9 or min(self.split_fractions) < 0:
            raise PreprocessError(f"--split must be three non-negative fractions summing to 1, got {self.split_fractions}")
        if self.diagnosis_date not in ("discharge", "admission"):
            raise PreprocessError(f"--diagnosis-date must be 'discharge' or 'admission', got {self.diagnosis_date!r}")
        if self.tokenizer_dir is not None and not Path(self.tokenizer_dir).is_dir():
            raise PreprocessError(f"--tokenizer-dir {self.tokenizer_dir}: not a directory")
        output = Path(self.output_dir).resolve()
        for flag, given in (("--input", self.input_dir), ("--tokenizer-dir", self.tokenizer_dir), ("--gem-dir", self.gem_dir)):
            # The run clears its own outputs (OUT/tokenizer among them), and all of OUT with --overwrite.
            if given is not None and output in (Path(given).resolve(), *Path(given).resolve().parents):
                raise PreprocessError(
                    f"{flag} {given} is inside --output-dir {self.output_dir}, which this run's own output "
                    "replaces; copy it elsewhere first"
                )
        try:
            HarmonizeConfig(icd10cm_prefix=self.icd10cm_prefix, icd10pcs_prefix=self.icd10pcs_prefix)
        except ValueError as err:
            raise PreprocessError(str(err)) from None

    @property
    def work(self) -> Path:
        return Path(self.output_dir) / WORK_DIR


@functools.lru_cache(maxsize=4)
def make_reader(config: PreprocessConfig) -> SourceReader:
    """One source reader per process and run (cached, like the harmoniser: readers hold only the
    run's settings, and `staging.empty_cleaned` caches per reader)."""
    cls = SOURCES[config.source]
    kwargs = {"limits": DateLimits(config.min_year, config.max_year), "extra_code_systems": config.extra_code_systems,
              "max_age": config.max_age}
    if config.source in ("mimic-iv", "mimic-iii"):
        kwargs["diagnosis_date"] = config.diagnosis_date
    return cls(**kwargs)


@functools.lru_cache(maxsize=4)
def make_harmoniser(config: PreprocessConfig) -> Harmoniser:
    """One frozen harmoniser per process (cached: GEM parsing takes a moment)."""
    reverse_diagnosis = reverse_procedure = None
    if config.gem_dir is not None:
        diagnosis, procedure = load_cms_gems(Path(config.gem_dir))
        if config.reverse_gem:
            reverse_diagnosis, reverse_procedure = load_cms_reverse_gems(Path(config.gem_dir))
    else:
        diagnosis, procedure = load_package_diagnosis_gem(), None
        if config.reverse_gem:
            reverse_diagnosis = load_package_reverse_diagnosis_gem()
    rules = HarmonizeConfig(icd10cm_prefix=config.icd10cm_prefix, icd10pcs_prefix=config.icd10pcs_prefix,
                            reverse_gem=config.reverse_gem)
    return Harmoniser(config=rules, diagnosis_gem=diagnosis, procedure_gem=procedure,
                      reverse_diagnosis_gem=reverse_diagnosis, reverse_procedure_gem=reverse_procedure)


def input_tables(config: PreprocessConfig, reader: SourceReader) -> list[tuple[str, str, Path]]:
    """(spec name, ledger table name, file) for every table of the source found in the input."""
    return find_tables(reader, Path(config.input_dir))
