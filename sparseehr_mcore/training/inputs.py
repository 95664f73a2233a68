"""Which datasets and which tokenizer a run trains on, resolved from DataConfig and checked.

The preprocessing tool writes, per output directory, a manifest naming the train/valid/test datasets
of its patient-level split and the saved tokenizer. Several directories blend (each with a weight, or
by size); explicit dataset prefixes can be added. Every dataset must exist and hold patients, and all
must come from one tokenizer: errors say which and why, before any compute.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from megatron.core.datasets.indexed_dataset import IndexedDataset

from sparseehr_mcore.config import ConfigError
from sparseehr_mcore.config.train import DataConfig
from sparseehr_mcore.training.data import SpecialIds
from sparseehr_mcore.training.tokenizer_facts import (
    TokenizerFacts,
    load_tokenizer_facts,
    read_split_prefixes,
    tokenizer_dir_of,
)


@dataclass(frozen=True)
class DataSources:
    train: tuple[list[str], list[float] | None]
    valid: tuple[list[str], list[float] | None] | None
    tokenizer_dir: Path
    vocab_size: int
    special_ids: SpecialIds


def _check_dataset(prefix: str) -> int:
    """Number of patients in the indexed dataset at `prefix`; a clear error when absent or empty."""
    for suffix in (".bin", ".idx"):
        if not Path(prefix + suffix).is_file():
            raise ConfigError(f"dataset {prefix}: {prefix + suffix} not found (run tools/preprocess_ehr.py first)")
    # An empty .bin cannot even be memory-mapped, so look at its size before opening it.
    patients = len(IndexedDataset(prefix, mmap=True)) if Path(prefix + ".bin").stat().st_size else 0
    if patients == 0:
        raise ConfigError(f"dataset {prefix} holds no patients")
    return patients


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


def resolve_data_sources(data: DataConfig) -> DataSources:
    """Dataset prefixes per split (with blend weights) and the tokenizer facts, all checked."""
    train_prefixes, valid_prefixes, train_weights, valid_weights = [], [], [], []
    tokenizer_dirs: list[Path] = []
    for index, directory in enumerate(data.preprocessed_dirs):
        splits = read_split_prefixes(Path(directory))
        if "train" not in splits:  # the preprocessing writes no files for an empty split
            raise ConfigError(f"{directory} has no training patients (its manifest lists no train dataset)")
        weight = data.weights[index] if data.weights else None
        train_prefixes.append(splits["train"])
        train_weights.append(weight)
        if splits.get("valid"):
            valid_prefixes.append(splits["valid"])
            valid_weights.append(weight)
        tokenizer_dirs.append(tokenizer_dir_of(Path(directory)))
    train_prefixes += data.train_prefixes
    valid_prefixes += data.valid_prefixes
    train_weights += [None] * len(data.train_prefixes)
    valid_weights += [None] * len(data.valid_prefixes)
    if not train_prefixes:
        raise ConfigError("no training data: set data.preprocessed_dirs or data.train_prefixes")
    tokenizer_dir = find_tokenizer_dir(data)
    facts: TokenizerFacts = load_tokenizer_facts(tokenizer_dir)
    for other in tokenizer_dirs[1:]:
        if load_tokenizer_facts(other).fingerprint != facts.fingerprint:
            raise ConfigError(f"{other} was tokenized with another vocabulary than {tokenizer_dir}: blend only datasets of one tokenizer")
    train_sizes = [_check_dataset(prefix) for prefix in train_prefixes]
    for prefix in valid_prefixes:
        _check_dataset(prefix)

    def blend(prefixes, weights, sizes=None):
        if not prefixes:
            return None
        if all(w is None for w in weights):
            return prefixes, None  # Megatron-Core blends by dataset size
        return prefixes, [w if w is not None else float(s) for w, s in zip(weights, sizes or [1] * len(weights))]

    return DataSources(
        train=blend(train_prefixes, train_weights, train_sizes),
        valid=blend(valid_prefixes, valid_weights),
        tokenizer_dir=tokenizer_dir,
        vocab_size=facts.vocab_size,
        special_ids=facts.special_ids,
    )
