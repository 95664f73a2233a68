"""Which datasets and which tokenizer a run trains on, resolved from DataConfig and checked.

The preprocessing tool writes, per output directory, a manifest naming the train/valid/test datasets
of its patient-level split and the saved tokenizer. Several directories blend, and explicit dataset
prefixes can be added; `DataConfig` states the one rule that weighs them (all given, or all by
patient count), and the blends handed on always carry one weight per source, so Megatron-Core
builds each one to the size the run asks for.

Every dataset must exist and hold patients, and every one is checked against the run's one
tokenizer: a directory's saved tokenizer, and the tokenizer of the preprocessed directory that wrote
an explicit prefix, must have its vocabulary; a bare prefix (no manifest lists it) must at least use
no id outside it. All problems are reported together, before any compute.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from megatron.core.datasets.indexed_dataset import IndexedDataset

from sparseehr_mcore.config import ConfigError
from sparseehr_mcore.config.train import DataConfig
from sparseehr_mcore.training.data import SpecialIds
from sparseehr_mcore.training.tokenizer_facts import (
    TokenizerFacts,
    load_tokenizer_facts,
    read_split_prefixes,
    tokenizer_dir_of,
    tokenizer_dir_of_dataset,
)

Blend = tuple[list[str], list[float]]


@dataclass(frozen=True)
class DataSources:
    train: Blend  # (prefixes, one weight per prefix)
    valid: Blend | None
    tokenizer_dir: Path
    vocab_size: int
    special_ids: SpecialIds


@dataclass(frozen=True)
class _Source:
    """One dataset of a blend: its prefix, its given weight (None: by size), the tokenizer it was
    written with (None: not known, a bare prefix)."""

    prefix: str
    weight: float | None
    tokenizer_dir: Path | None


def _patients(prefix: str) -> int:
    """Number of patients in the indexed dataset at `prefix`; a clear error when absent or empty."""
    for suffix in (".bin", ".idx"):
        if not Path(prefix + suffix).is_file():
            raise ConfigError(f"dataset {prefix}: {prefix + suffix} not found (run tools/preprocess_ehr.py first)")
    # An empty .bin cannot even be memory-mapped, so look at its size before opening it.
    patients = len(IndexedDataset(prefix, mmap=True)) if Path(prefix + ".bin").stat().st_size else 0
    if patients == 0:
        raise ConfigError(f"dataset {prefix} holds no patients")
    return patients


def _largest_token_id(prefix: str) -> int:
    """The largest id in a dataset (one pass over its memory-mapped .bin)."""
    dtype = IndexedDataset(prefix, mmap=True).index.dtype
    return int(np.memmap(prefix + ".bin", dtype=dtype, mode="r").max())


def find_tokenizer_dir(data: DataConfig) -> Path:
    """`data.tokenizer_dir`, else the tokenizer saved with the first preprocessed directory."""
    if data.tokenizer_dir:
        return Path(data.tokenizer_dir)
    if data.preprocessed_dirs:
        first = Path(data.preprocessed_dirs[0])
        read_split_prefixes(first)  # says what is wrong with the directory, if anything
        return tokenizer_dir_of(first)
    raise ConfigError("no tokenizer: set data.tokenizer_dir (explicit dataset prefixes carry none)")


def tokenizer_vocab_size(data: DataConfig) -> int:
    """The vocabulary size of the run's tokenizer (what `model.vocab_size: tokenizer` means)."""
    return load_tokenizer_facts(find_tokenizer_dir(data)).vocab_size


def _sources(data: DataConfig) -> tuple[list[_Source], list[_Source]]:
    """The training and validation sources, in order: directories, then explicit prefixes."""
    train, valid, problems = [], [], []
    for index, directory in enumerate(data.preprocessed_dirs):
        try:
            splits = read_split_prefixes(Path(directory))
        except ConfigError as err:
            problems.append(str(err))
            continue
        if "train" not in splits:  # the preprocessing writes no files for an empty split
            problems.append(f"{directory} has no training patients (its manifest lists no train dataset)")
            continue
        weight = data.weights[index] if data.weights else None
        tokenizer_dir = tokenizer_dir_of(Path(directory))
        train.append(_Source(splits["train"], weight, tokenizer_dir))
        if splits.get("valid"):
            valid.append(_Source(splits["valid"], weight, tokenizer_dir))  # the directory's weight
    for prefixes, weights, into in (
        (data.train_prefixes, data.train_prefix_weights, train),
        (data.valid_prefixes, data.valid_prefix_weights, valid),
    ):
        for index, prefix in enumerate(prefixes):
            into.append(_Source(prefix, weights[index] if weights else None, tokenizer_dir_of_dataset(prefix)))
    if problems:
        raise ConfigError("the training data is unusable:\n  - " + "\n  - ".join(problems))
    return train, valid


def _tokenizer_problems(sources: list[_Source], *, facts: TokenizerFacts, tokenizer_dir: Path) -> list[str]:
    """Every source written with another vocabulary than the run's tokenizer."""
    problems, fingerprints = [], {}
    for source in sources:
        if source.tokenizer_dir is None:
            largest = _largest_token_id(source.prefix)
            if largest >= facts.vocab_size:
                problems.append(
                    f"dataset {source.prefix} holds token id {largest}, outside the {facts.vocab_size}-token "
                    f"vocabulary of {tokenizer_dir}: it was written with another tokenizer"
                )
            continue
        if source.tokenizer_dir not in fingerprints:
            try:
                fingerprints[source.tokenizer_dir] = load_tokenizer_facts(source.tokenizer_dir).fingerprint
            except ConfigError as err:
                problems.append(f"dataset {source.prefix}: {err}")
                continue
        if fingerprints[source.tokenizer_dir] != facts.fingerprint:
            problems.append(
                f"dataset {source.prefix} was tokenized with {source.tokenizer_dir}, another vocabulary than "
                f"{tokenizer_dir}: blend only datasets of one tokenizer"
            )
    return problems


def resolve_data_sources(data: DataConfig) -> DataSources:
    """Dataset prefixes per split with one weight each, and the tokenizer facts, all checked.

    Raises:
        ConfigError: listing every missing or empty dataset and every one of another tokenizer.
    """
    train, valid = _sources(data)
    if not train:
        raise ConfigError("no training data: set data.preprocessed_dirs or data.train_prefixes")
    tokenizer_dir = find_tokenizer_dir(data)
    facts: TokenizerFacts = load_tokenizer_facts(tokenizer_dir)
    problems, sizes = [], {}
    for source in train + valid:
        try:
            sizes[source.prefix] = _patients(source.prefix)
        except ConfigError as err:
            problems.append(str(err))
    if not problems:  # the tokenizer checks read the datasets
        problems += _tokenizer_problems(train + valid, facts=facts, tokenizer_dir=tokenizer_dir)
    if problems:
        raise ConfigError("the training data is unusable:\n  - " + "\n  - ".join(problems))

    def blend(sources: list[_Source]) -> Blend | None:
        if not sources:
            return None
        # The DataConfig rule: every source has a weight, or every one weighs its patient count.
        weights = [float(s.weight) if data.weighted else float(sizes[s.prefix]) for s in sources]
        return [s.prefix for s in sources], weights

    return DataSources(
        train=blend(train),
        valid=blend(valid),
        tokenizer_dir=tokenizer_dir,
        vocab_size=facts.vocab_size,
        special_ids=facts.special_ids,
    )
