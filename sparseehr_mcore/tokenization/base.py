"""The tokenizer plugin protocol (DESIGN decision 9) and the vocabulary all plugins share.

A plugin turns a `PatientTimeline` into token ids and back. The pipeline builds one from token
counts over the training split (`terms` + `from_counts`), saves it beside the dataset, and every
later dataset (evaluation, another site) is encoded with that saved, frozen tokenizer: unknown codes
become the typed unknown token of their type and are counted, never added to the vocabulary.
Megatron-Core's `GPTDataset` duck-types a tokenizer by `vocab_size`, `eod`, `pad` and
`unique_identifiers`, which every plugin has.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

from sparseehr_mcore.data.timeline import PatientTimeline

VOCAB_FILE = "vocab.json"
CONFIG_FILE = "tokenizer_config.json"
# Written beside every vocabulary the pipeline builds: each term's count over the training split.
# Evaluation reads it (population-frequency baseline, rare/common codes); not part of the protocol.
TERM_COUNTS_FILE = "term_counts.json"

PAD, EOD, BEGIN, END, UNK = "[PAD]", "[EOD]", "[BEGIN]", "[END]", "[UNK]"
SPECIALS = (PAD, EOD, BEGIN, END, UNK)


def unknown_token(token_type: str) -> str:
    """The typed unknown token of a token type, e.g. 'DX' -> '[UNK:DX]'."""
    return f"[UNK:{token_type}]"


@runtime_checkable
class EHRTokenizer(Protocol):
    """What the pipeline and the training side need from a tokenizer plugin."""

    name: ClassVar[str]
    version: ClassVar[str]

    @classmethod
    def terms(cls, timeline: PatientTimeline) -> Iterable[str]:
        """The vocabulary terms this timeline would use (counted over the training split)."""

    @classmethod
    def from_counts(cls, counts: Mapping[str, int], *, min_count: int) -> "EHRTokenizer":
        """A tokenizer whose vocabulary is the specials plus every term seen `min_count` times."""

    @classmethod
    def load(cls, directory: Path) -> "EHRTokenizer":
        """Reopen a tokenizer saved by `save`."""

    def save(self, directory: Path) -> None:
        """Write the vocabulary and config (plain JSON, stable bytes) to `directory`."""

    def encode(self, timeline: PatientTimeline) -> list[int]:
        """Token ids of one patient: demographics prefix, bundles, then EOD."""

    def decode(self, ids: Iterable[int]) -> PatientTimeline:
        """The timeline the ids describe (patient id empty; dates only as far as the scheme keeps)."""

    @property
    def vocab_size(self) -> int: ...

    @property
    def eod(self) -> int: ...

    @property
    def pad(self) -> int: ...

    @property
    def unique_identifiers(self) -> dict: ...

    @property
    def special_ids(self) -> dict[str, int]:
        """Named specials: pad, eod, bundle_begin, bundle_end, unk and `unk:<TYPE>` per type."""

    @property
    def unknown_ids(self) -> frozenset[int]:
        """Every unknown id (generic and typed), for counting unknowns in encoded output."""

    @property
    def tokens(self) -> list[str]:
        """Token strings by id (for a Hugging Face WordLevel export)."""


def save_term_counts(directory: Path, counts: Mapping[str, int]) -> None:
    path = Path(directory) / TERM_COUNTS_FILE
    path.write_text(json.dumps(dict(sorted(counts.items())), indent=0) + "\n", encoding="utf-8")


def load_term_counts(directory: Path) -> dict[str, int] | None:
    """The training-split term counts saved with a vocabulary, or None for a tokenizer without them."""
    path = Path(directory) / TERM_COUNTS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


class Vocabulary:
    """Token strings <-> ids; specials first, then terms by descending count, ties by string."""

    def __init__(self, tokens: list[str]) -> None:
        if len(set(tokens)) != len(tokens):
            raise ValueError("vocabulary has duplicate tokens")
        self.tokens = list(tokens)
        self.ids = {token: index for index, token in enumerate(self.tokens)}

    @classmethod
    def build(cls, counts: Mapping[str, int], *, specials: Iterable[str], min_count: int) -> "Vocabulary":
        reserved = list(dict.fromkeys(specials))
        kept = [t for t, n in counts.items() if n >= min_count and t not in set(reserved)]
        kept.sort(key=lambda token: (-counts[token], token))
        return cls(reserved + kept)

    def __len__(self) -> int:
        return len(self.tokens)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.ids, indent=0, ensure_ascii=True) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> "Vocabulary":
        ids = json.loads(path.read_text(encoding="utf-8"))
        tokens = [None] * len(ids)
        for token, index in ids.items():
            tokens[index] = token
        if any(token is None for token in tokens):
            raise ValueError(f"{path}: token ids are not 0..{len(ids) - 1}")
        return cls(tokens)
