"""The paper's typed-code scheme, shared by the built-in plugins in the repository's tokenizers/.

Tokens: `AGE:45-49`, `SEX:F`, `REGION:...` (demographics prefix, in `STATIC_KEYS` order), then per
day bundle `[BEGIN]`, one `TYPE:CODE` token per event in bundle order, `[END]`; finally `[EOD]`.
Types: DX (ICD-10-CM), PX (ICD-10-PCS), CPT (CPT/HCPCS), PX9 (ICD-9 procedures kept by fallback)
and the system name itself for any other system. A code absent from the vocabulary becomes
`[UNK:TYPE]` (decoded as an event with code '?').

Order of the codes inside a bundle (`bundle_order`, saved in the tokenizer config):

* `sorted` (default): diagnoses before procedures, then by code system, then by code
  (`timeline.make_bundle`). Deterministic, but it puts the alphabetically first code first, so
  the distribution right after `[BEGIN]` is that of a bundle's first code, not of its codes.
* `frequency`: the same grouping by code system, and within a system by descending training count
  (vocabulary order); unknown codes last in their system.
* `shuffled`: stored as `sorted`; training shuffles the codes of every bundle afresh each epoch
  (`training.data.PatientDataset`), so a model learns bundles as sets.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import ClassVar

from sparseehr_mcore.data.timeline import (
    CPT,
    system_rank,
    ICD9PCS,
    ICD10CM,
    ICD10PCS,
    STATIC_KEYS,
    CodedEvent,
    DayBundle,
    PatientTimeline,
)
from sparseehr_mcore.tokenization.base import (
    BEGIN,
    CONFIG_FILE,
    END,
    EOD,
    PAD,
    SPECIALS,
    VOCAB_FILE,
    Vocabulary,
    unknown_token,
)
from sparseehr_mcore.tokenization.typed_frames import count_terms, encode_frames

SYSTEM_TYPES = {ICD10CM: "DX", ICD10PCS: "PX", CPT: "CPT", ICD9PCS: "PX9"}
TYPE_SYSTEMS = {token_type: system for system, token_type in SYSTEM_TYPES.items()}
STATIC_TYPES = {key: key.upper() for key in STATIC_KEYS}
UNKNOWN_CODE = "?"
BUNDLE_ORDERS = ("sorted", "frequency", "shuffled")
# Typed unknowns always reserved, so a dataset from another site has one for every built-in type.
RESERVED_TYPES = tuple(STATIC_TYPES.values()) + tuple(SYSTEM_TYPES.values())


def event_token(event: CodedEvent) -> str:
    return f"{SYSTEM_TYPES.get(event.system, event.system)}:{event.code}"


class TypedCodeTokenizerBase:
    """Typed-code tokens; subclasses may add tokens between bundles (`_between`).

    `bulk_term_counts` and `bulk_encoding` declare that the vectorised whole-bucket paths
    (`count_bucket_terms`, `encode_bucket`) give exactly what `terms` and `encode` give. They are
    read from the class's own namespace, never inherited: a subclass that changes the scheme gets
    the per-timeline paths unless it declares the capability itself (and a test proves it:
    tests/unit/data/test_data_typed_frames.py runs every registered plugin).
    """

    name: ClassVar[str] = "typed-codes"
    version: ClassVar[str] = "1"

    def __init__(self, vocabulary: Vocabulary, *, bundle_order: str = "sorted") -> None:
        if bundle_order not in BUNDLE_ORDERS:
            raise ValueError(f"bundle_order {bundle_order!r}: choose one of {', '.join(BUNDLE_ORDERS)}")
        self.bundle_order = bundle_order
        self.vocabulary = vocabulary
        ids = vocabulary.ids
        self._pad, self._eod, self._begin, self._end, self._unk = (ids[t] for t in SPECIALS)
        self._unknown_by_type = {t[5:-1]: i for t, i in ids.items() if t.startswith("[UNK:")}

    # --- building -------------------------------------------------------------------------
    @classmethod
    def extra_specials(cls) -> list[str]:
        return []

    @classmethod
    def static_terms(cls, timeline: PatientTimeline) -> list[str]:
        return [f"{STATIC_TYPES[key]}:{timeline.static[key]}" for key in STATIC_KEYS if key in timeline.static]

    @classmethod
    def terms(cls, timeline: PatientTimeline) -> Iterable[str]:
        yield from cls.static_terms(timeline)
        for bundle in timeline.bundles:
            for event in bundle.events:
                yield event_token(event)

    @classmethod
    def from_counts(cls, counts: Mapping[str, int], *, min_count: int, bundle_order: str = "sorted"):
        types = sorted({term.split(":", 1)[0] for term in counts} | set(RESERVED_TYPES))
        specials = list(SPECIALS) + cls.extra_specials() + [unknown_token(t) for t in types]
        return cls(Vocabulary.build(counts, specials=specials, min_count=min_count), bundle_order=bundle_order)

    # --- whole-bucket fast paths (optional in the protocol; None means "use the per-timeline path")
    @classmethod
    def declares(cls, capability: str) -> bool:
        """Whether this very class (not a base) declares `capability` ("bulk_term_counts", "bulk_encoding")."""
        return bool(cls.__dict__.get(capability, False))

    @classmethod
    def count_bucket_terms(cls, patients, events):
        """Training-split term counts of a bucket, vectorised; None unless the class declares `bulk_term_counts`."""
        if not cls.declares("bulk_term_counts"):
            return None
        return count_terms(patients, events, system_types=SYSTEM_TYPES, static_types=STATIC_TYPES)

    def encode_bucket(self, patients, events):
        """(ids, length per patient) of a bucket, vectorised; None unless the class declares `bulk_encoding`."""
        if not type(self).declares("bulk_encoding"):
            return None
        return encode_frames(
            patients, events, tokenizer=self, system_types=SYSTEM_TYPES, static_types=STATIC_TYPES,
            by_frequency=self.bundle_order == "frequency",
        )

    # --- persistence ------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.vocabulary.save(directory / VOCAB_FILE)
        config = {"name": self.name, "version": self.version, "vocab_size": self.vocab_size,
                  "special_ids": self.special_ids, "bundle_order": self.bundle_order}
        (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: Path):
        config = json.loads((Path(directory) / CONFIG_FILE).read_text(encoding="utf-8"))
        if config["name"] != cls.name:
            raise ValueError(f"{directory}: saved by tokenizer {config['name']!r}, not {cls.name!r}")
        # Configs written before bundle orders existed are sorted.
        return cls(Vocabulary.load(Path(directory) / VOCAB_FILE), bundle_order=config.get("bundle_order", "sorted"))

    # --- the Megatron-facing surface ----------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    @property
    def eod(self) -> int:
        return self._eod

    @property
    def pad(self) -> int:
        return self._pad

    @property
    def tokens(self) -> list[str]:
        return list(self.vocabulary.tokens)

    @property
    def unique_identifiers(self) -> dict:
        digest = hashlib.sha256("\n".join(self.vocabulary.tokens).encode()).hexdigest()
        return {"class": type(self).__name__, "name": self.name, "version": self.version, "vocab_sha256": digest}

    @property
    def special_ids(self) -> dict[str, int]:
        named = {"pad": self._pad, "eod": self._eod, "bundle_begin": self._begin, "bundle_end": self._end,
                 "unk": self._unk}
        named.update({f"unk:{t}": i for t, i in sorted(self._unknown_by_type.items())})
        return named

    @property
    def unknown_ids(self) -> frozenset[int]:
        return frozenset([self._unk, *self._unknown_by_type.values()])

    # --- encoding ------------------------------------------------------------------------------
    def _id(self, token: str) -> int:
        found = self.vocabulary.ids.get(token)
        if found is not None:
            return found
        return self._unknown_by_type.get(token.split(":", 1)[0], self._unk)

    def _bundle_ids(self, bundle: DayBundle) -> list[int]:
        """The ids of a bundle's events in this tokenizer's `bundle_order`."""
        ids = [self._id(event_token(event)) for event in bundle.events]
        if self.bundle_order != "frequency":
            return ids
        unknown = self.unknown_ids
        keys = [(system_rank(e.system), e.system, i in unknown, i) for e, i in zip(bundle.events, ids)]
        return [i for _, i in sorted(zip(keys, ids))]

    def _between(self, previous: DayBundle | None, bundle: DayBundle) -> list[int]:
        """Ids emitted before `bundle` (none in the plain scheme)."""
        return []

    def encode(self, timeline: PatientTimeline) -> list[int]:
        ids = [self._id(term) for term in self.static_terms(timeline)]
        previous = None
        for bundle in timeline.bundles:
            ids.extend(self._between(previous, bundle))
            ids.append(self._begin)
            ids.extend(self._bundle_ids(bundle))
            ids.append(self._end)
            previous = bundle
        ids.append(self._eod)
        return ids

    def _decode_between(self, token: str) -> bool:
        """Consume a between-bundle token while decoding; False if `token` is not one."""
        return False

    def decode(self, ids: Iterable[int]) -> PatientTimeline:
        static: dict[str, str] = {}
        bundles: list[DayBundle] = []
        events: list[CodedEvent] | None = None
        by_type = {value: key for key, value in STATIC_TYPES.items()}
        for index in ids:
            token = self.vocabulary.tokens[int(index)]
            if token in (PAD, EOD):
                break
            if token == BEGIN:
                events = []
            elif token == END:
                bundles.append(DayBundle(None, tuple(events or ())))
                events = None
            elif events is not None:
                token_type, code = self._split(token)
                events.append(CodedEvent(TYPE_SYSTEMS.get(token_type, token_type), code))
            elif not self._decode_between(token):
                token_type, code = self._split(token)
                if token_type in by_type:
                    static[by_type[token_type]] = code
        return PatientTimeline("", static, tuple(bundles))

    @staticmethod
    def _split(token: str) -> tuple[str, str]:
        if token.startswith("[UNK:"):
            return token[5:-1], UNKNOWN_CODE
        token_type, _, code = token.partition(":")
        return token_type, code
