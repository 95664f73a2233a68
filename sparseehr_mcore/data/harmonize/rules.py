"""The harmonisation rules: every source code to zero or more canonical codes, with an outcome.

Rules (docs/data.md states them for users):

* ICD-10-CM and ICD-10-PCS codes are validated, dots removed, upper-cased and cut to the configured
  canonical prefix length (`icd10cm_prefix`, `icd10pcs_prefix`; 0 keeps the full code).
* CPT/HCPCS codes are cut at the first '-' (modifiers) and must have the fixed 5-character form
  (5 digits, 4 digits + letter for category II/III, or a letter + 4 digits for HCPCS level II).
* ICD-9 codes go through the GEM. A single entry is `exact` (or `approximate` if flagged). Several
  alternative entries: the targets are cut to the prefix level; if they agree the outcome is
  `approximate` with that target, otherwise the smallest target in code order (stable, documented).
  A combination entry (flag 3) maps to one code per choice list of the lowest-numbered scenario,
  the smallest code of each list: several events, outcome `combination`.
* No GEM entry, or only "no map" entries: first the reverse GEM (`reverse_gem`): the ICD-10 codes
  whose reverse (ICD-10 to ICD-9) entry names the code, e.g. E935.2 (adverse effect of opiates),
  a CMS "no map" code, is named by T40.0X5A, T40.2X5A, ... Of those, the most frequent 3-character
  category (ties: the lowest category), then the lowest code in it, cut to the prefix level:
  deterministic, and the category is the one most of CMS's reverse entries agree on. Then (often a
  non-billable header code such as 567.2, whose children 567.21-567.29 are in the GEM, which no
  reverse entry names): `fallback` to an ICD-10 category (3 characters) when all mapped ICD-9 codes
  under the code's longest prefix (the code itself, then shorter, down to its ICD-9 category) land
  in one ICD-10 category; else `unmapped`. ICD-9 procedures with a procedure GEM get the same
  reverse-GEM step (no category fallback).
* ICD-9 procedures when no procedure GEM is loaded (the default package has none): kept in their
  own system as `fallback` (token type PX9), so nothing is lost silently; pass `--gem-dir` to map.
* Other code systems (allowed by `--extra-code-systems`) pass through unchanged as `exact`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import asdict, dataclass
from functools import cached_property, lru_cache

from sparseehr_mcore.data.harmonize.gems import GemEntry, GemTable
from sparseehr_mcore.data.timeline import CPT, ICD9CM, ICD9PCS, ICD10CM, ICD10PCS

RULES_VERSION = "2"  # 2: the reverse-GEM step for "no map" codes
OUTCOMES = ("exact", "approximate", "combination", "reverse_gem", "fallback", "unmapped", "malformed")

_ICD10CM = re.compile(r"^[A-Z][0-9][0-9A-Z]{1,5}$")
_ICD10PCS = re.compile(r"^[0-9A-HJ-NP-Z]{7}$")
_CPT = re.compile(r"^(\d{5}|\d{4}[A-Z]|[A-Z]\d{4})$")
_ICD9CM = re.compile(r"^(\d{3,5}|V\d{2,4}|E\d{3,4})$")
_ICD9PCS = re.compile(r"^\d{2,4}$")


@dataclass(frozen=True)
class HarmonizeConfig:
    """Canonical forms. Prefix lengths count characters without the dot; 0 keeps full codes.

    `reverse_gem` and `category_fallback` switch the two steps for ICD-9 codes the forward GEM
    does not map (module docstring), in that order.
    """

    icd10cm_prefix: int = 4
    icd10pcs_prefix: int = 4
    category_fallback: bool = True
    reverse_gem: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.icd10cm_prefix <= 7 or self.icd10cm_prefix in (1, 2):
            raise ValueError(f"icd10cm_prefix must be 0 (full) or 3..7, got {self.icd10cm_prefix}")
        if not 0 <= self.icd10pcs_prefix <= 7:
            raise ValueError(f"icd10pcs_prefix must be 0 (full) or 1..7, got {self.icd10pcs_prefix}")


@dataclass(frozen=True)
class Mapping:
    """The outcome for one source code and the canonical (system, code) pairs it becomes."""

    outcome: str
    targets: tuple[tuple[str, str], ...]


def _cut(code: str, length: int) -> str:
    return code[:length] if length else code


def _icd9_category(code: str) -> str:
    return code[:4] if code.startswith("E") else code[:3]


class Harmoniser:
    """Maps codes by the rules above; frozen at construction and fingerprinted.

    Args:
        config: canonical prefix levels and fallback switch.
        diagnosis_gem: ICD-9-CM to ICD-10-CM GEM.
        procedure_gem: ICD-9 procedure to ICD-10-PCS GEM, or None.
        reverse_diagnosis_gem, reverse_procedure_gem: ICD-10 to ICD-9 GEMs for the reverse-GEM step
            (used only with `config.reverse_gem`), or None.
    """

    def __init__(self, *, config: HarmonizeConfig, diagnosis_gem: GemTable, procedure_gem: GemTable | None,
                 reverse_diagnosis_gem: GemTable | None = None, reverse_procedure_gem: GemTable | None = None) -> None:
        self.config = config
        self.diagnosis_gem = diagnosis_gem
        self.procedure_gem = procedure_gem
        self.reverse_gems = {"reverse_diagnosis_gem": reverse_diagnosis_gem,
                             "reverse_procedure_gem": reverse_procedure_gem}
        # Target system -> reverse GEM of the reverse-GEM step; its choices are worked out on first
        # use (`_reverse_choice`), like the category fallbacks: most processes never need either.
        self._reverse_gems = {system: table for system, table in
                              ((ICD10CM, reverse_diagnosis_gem), (ICD10PCS, reverse_procedure_gem))
                              if table is not None and config.reverse_gem}
        self._reverse: dict[str, dict[str, str]] = {}
        self.map_code = lru_cache(maxsize=1 << 20)(self._map_code)

    @cached_property
    def _dx_categories(self) -> dict[str, frozenset[str]]:
        return self._category_targets(self.diagnosis_gem)

    def _reverse_choice(self, system: str, code: str) -> str | None:
        """The ICD-10 code the reverse-GEM step gives `code`, or None."""
        if system not in self._reverse:
            table = self._reverse_gems.get(system)
            self._reverse[system] = self._reverse_choices(table) if table is not None else {}
        return self._reverse[system].get(code)

    @staticmethod
    def _category_targets(gem: GemTable) -> dict[str, frozenset[str]]:
        """ICD-9 prefix (category length and longer) -> ICD-10 categories of the codes under it."""
        prefixes: dict[str, set[str]] = {}
        for source, entries in gem.entries.items():
            targets = {entry.target[:3] for entry in entries if not entry.no_map}
            for length in range(len(_icd9_category(source)), len(source) + 1):
                prefixes.setdefault(source[:length], set()).update(targets)
        return {prefix: frozenset(targets) for prefix, targets in prefixes.items()}

    @staticmethod
    def _reverse_choices(reverse: GemTable) -> dict[str, str]:
        """ICD-9 code -> the ICD-10 code the reverse-GEM step gives it (rule in the module docstring)."""
        named: dict[str, set[str]] = {}
        for icd10, entries in reverse.entries.items():
            for entry in entries:
                if not entry.no_map:
                    named.setdefault(entry.target, set()).add(icd10)
        chosen = {}
        for icd9, codes in named.items():
            categories = Counter(code[:3] for code in codes)
            category = min(categories, key=lambda c: (-categories[c], c))
            chosen[icd9] = min(code for code in codes if code[:3] == category)
        return chosen

    def _fallback(self, code: str) -> str | None:
        """The one ICD-10 category the mapped codes under `code`'s longest known prefix share."""
        for length in range(len(code), len(_icd9_category(code)) - 1, -1):
            targets = self._dx_categories.get(code[:length])
            if targets:
                return next(iter(targets)) if len(targets) == 1 else None
        return None

    @property
    def fingerprint(self) -> str:
        """sha256 over the rules version, the config and the GEM bytes: equal means same mapping."""
        record = {
            "rules_version": RULES_VERSION,
            "config": asdict(self.config),
            "diagnosis_gem": self.diagnosis_gem.sha256,
            "procedure_gem": self.procedure_gem.sha256 if self.procedure_gem else None,
            **{name: table.sha256 if table else None for name, table in self.reverse_gems.items()},
        }
        return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()

    def describe(self) -> dict:
        """The rule set as recorded in the manifest."""
        return {
            "rules_version": RULES_VERSION,
            "fingerprint": self.fingerprint,
            "config": asdict(self.config),
            "diagnosis_gem": {"origin": self.diagnosis_gem.origin, "sha256": self.diagnosis_gem.sha256,
                              "source_codes": len(self.diagnosis_gem)},
            **{name: None if table is None else {"origin": table.origin, "sha256": table.sha256,
                                                 "source_codes": len(table)}
               for name, table in (("procedure_gem", self.procedure_gem), *self.reverse_gems.items())},
        }

    def _map_code(self, system: str, raw_code: str) -> Mapping:
        code = raw_code.strip().upper().replace(".", "")
        if system == ICD10CM:
            return self._native(system, code, _ICD10CM, self.config.icd10cm_prefix)
        if system == ICD10PCS:
            return self._native(system, code, _ICD10PCS, self.config.icd10pcs_prefix)
        if system == CPT:
            return self._native(system, code.split("-", 1)[0], _CPT, 0)
        if system == ICD9CM:
            if not _ICD9CM.match(code):
                return Mapping("malformed", ())
            return self._through_gem(code, self.diagnosis_gem, ICD10CM, self.config.icd10cm_prefix, fallback=True)
        if system == ICD9PCS:
            if not _ICD9PCS.match(code):
                return Mapping("malformed", ())
            if self.procedure_gem is None:
                return Mapping("fallback", ((ICD9PCS, code),))
            return self._through_gem(code, self.procedure_gem, ICD10PCS, self.config.icd10pcs_prefix, fallback=False)
        return Mapping("exact", ((system, raw_code.strip()),))

    @staticmethod
    def _native(system: str, code: str, pattern: re.Pattern, prefix: int) -> Mapping:
        if not pattern.match(code):
            return Mapping("malformed", ())
        return Mapping("exact", ((system, _cut(code, prefix)),))

    def _through_gem(self, code: str, gem: GemTable, system: str, prefix: int, *, fallback: bool) -> Mapping:
        entries = [e for e in gem.entries.get(code, ()) if not e.no_map]
        if not entries:
            named = self._reverse_choice(system, code)
            if named is not None:
                return Mapping("reverse_gem", ((system, _cut(named, prefix)),))
            if fallback and self.config.category_fallback:
                category = self._fallback(code)
                if category is not None:
                    return Mapping("fallback", ((system, category),))
            return Mapping("unmapped", ())
        combination = [e for e in entries if e.combination]
        if combination:
            return self._combination(combination, system, prefix)
        targets = sorted({_cut(e.target, prefix) for e in entries})
        exact = len(entries) == 1 and not entries[0].approximate
        return Mapping("exact" if exact else "approximate", ((system, targets[0]),))

    @staticmethod
    def _combination(entries: list[GemEntry], system: str, prefix: int) -> Mapping:
        scenario = min(e.scenario for e in entries)
        lists: dict[int, list[str]] = {}
        for entry in entries:
            if entry.scenario == scenario:
                lists.setdefault(entry.choice_list, []).append(entry.target)
        chosen = sorted({_cut(min(targets), prefix) for targets in lists.values()})
        return Mapping("combination", tuple((system, target) for target in chosen))
