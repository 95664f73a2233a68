"""What training needs from an output directory of tools/preprocess_ehr.py and its saved tokenizer."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from sparseehr_mcore.config import ConfigError
from sparseehr_mcore.data.manifest import MANIFEST_FILE, dataset_prefixes, read_manifest
from sparseehr_mcore.data.run_config import TOKENIZER_DIR
from sparseehr_mcore.tokenization.base import VOCAB_FILE
from sparseehr_mcore.tokenization.metadata import load_tokenizer
from sparseehr_mcore.training.data import SpecialIds


@dataclass(frozen=True)
class TokenizerFacts:
    """The vocabulary size, the ids the sampler needs, and a fingerprint of the vocabulary."""

    vocab_size: int
    special_ids: SpecialIds
    fingerprint: str


def tokenizer_dir_of(preprocessed_dir: Path) -> Path:
    return Path(preprocessed_dir) / TOKENIZER_DIR


def tokenizer_dir_of_dataset(prefix: str) -> Path | None:
    """The tokenizer of the preprocessed directory that wrote the dataset at `prefix`, or None when
    no manifest lists it (a bare prefix).

    tools/preprocess_ehr.py writes `OUT/<split>` and `OUT/shards/<shard>/<split>`, so OUT is at most
    three levels up; the manifest found there must name this very dataset.
    """
    path = Path(prefix).absolute()
    for directory in list(path.parents)[:3]:
        if not (directory / MANIFEST_FILE).is_file():
            continue
        manifest = read_manifest(directory)
        named = set(manifest.get("datasets", {}).values())
        named.update(name for names in manifest.get("shard_datasets", {}).values() for name in names)
        if path.relative_to(directory).as_posix() in named:
            return tokenizer_dir_of(directory)
    return None


def read_split_prefixes(preprocessed_dir: Path) -> dict[str, str]:
    """Dataset prefix per split ('train', 'valid', 'test') named by the directory's manifest."""
    if not Path(preprocessed_dir).is_dir():
        raise ConfigError(f"preprocessed directory {preprocessed_dir} does not exist (run tools/preprocess_ehr.py first)")
    if not (Path(preprocessed_dir) / MANIFEST_FILE).is_file():
        raise ConfigError(
            f"{preprocessed_dir}: no {MANIFEST_FILE} (not a finished output of tools/preprocess_ehr.py)"
        )
    return dataset_prefixes(Path(preprocessed_dir))


def load_tokenizer_facts(tokenizer_dir: Path) -> TokenizerFacts:
    """Open the saved tokenizer at `tokenizer_dir` through its plugin."""
    try:
        tokenizer = load_tokenizer(Path(tokenizer_dir))
    except (FileNotFoundError, ValueError) as err:
        raise ConfigError(f"tokenizer {tokenizer_dir}: {err}") from None
    special = tokenizer.special_ids
    fingerprint = hashlib.sha256((Path(tokenizer_dir) / VOCAB_FILE).read_bytes()).hexdigest()
    return TokenizerFacts(
        vocab_size=tokenizer.vocab_size,
        special_ids=SpecialIds(
            pad=special["pad"], eod=special["eod"], bundle_begin=special["bundle_begin"],
            bundle_end=special["bundle_end"], shuffle_bundles=getattr(tokenizer, "bundle_order", "sorted") == "shuffled",
        ),
        fingerprint=fingerprint,
    )
