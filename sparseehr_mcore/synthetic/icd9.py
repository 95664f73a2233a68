"""ICD-10-CM to ICD-9-CM through the reverse GEM: how the ICD-9 hospital codes its diagnoses.

Per ICD-10-CM code, once (deterministic, documented in docs/synthetic.md):

1. the reverse GEM rows of the code that are not "no map"; if it has none, those of its longest
   parent (the code cut one character at a time, down to 3) that has some: codes added to ICD-10-CM
   after the package's 2018 GEM are subdivisions of a code the GEM knows (N18.30 of N18.3);
2. if there are single-code rows: prefer targets whose own forward GEM entry leads back to the
   code (or the parent used), then take the last target in code order: ICD-9 puts the unspecified
   subdivision last (401.9 of 401.0/401.1/401.9), which is what a coder writes without details;
3. otherwise (only combination rows: the ICD-10 code needs several ICD-9 codes): the lowest
   scenario, one code per choice list, the last of each list in code order.

Outcomes: `exact` (one plain row), `approximate` (flagged or several candidates), `combination`,
`parent` (via a parent code) or `unmapped` (no usable row at any level; the catalogue forbids
such codes, so a cohort has none).
"""

from __future__ import annotations

from dataclasses import dataclass

from sparseehr_mcore.data.harmonize.gems import GemEntry
from sparseehr_mcore.synthetic.codelists import CodeLists

OUTCOMES = ("exact", "approximate", "combination", "parent", "unmapped")


@dataclass(frozen=True)
class Icd9Choice:
    """The ICD-9-CM codes written for one ICD-10-CM code, and how they were chosen."""

    outcome: str
    targets: tuple[str, ...]
    via: str  # the ICD-10-CM code whose GEM rows were used


class ReverseCoder:
    """Chooses ICD-9-CM codes for ICD-10-CM codes by the rules above (cached per code)."""

    def __init__(self, *, code_lists: CodeLists) -> None:
        self._reverse = code_lists.reverse_gem
        self._forward = code_lists.forward_gem.entries
        self._cache: dict[str, Icd9Choice] = {}

    def _usable(self, code: str) -> list[GemEntry]:
        entries = []
        for target, flags in self._reverse.get(code, ()):
            if flags[1] != "1":  # "no map"
                entries.append(GemEntry(target=target, approximate=flags[0] == "1", no_map=False,
                                        combination=flags[2] == "1", scenario=int(flags[3]), choice_list=int(flags[4])))
        return entries

    def choose(self, code: str) -> Icd9Choice:
        """The ICD-9-CM code(s) for dotless ICD-10-CM `code`."""
        choice = self._cache.get(code)
        if choice is None:
            choice = self._cache[code] = self._choose(code)
        return choice

    def _choose(self, code: str) -> Icd9Choice:
        via = code
        entries = self._usable(code)
        for length in range(len(code) - 1, 2, -1):
            if entries:
                break
            via = code[:length]
            entries = self._usable(via)
        if not entries:
            return Icd9Choice("unmapped", (), code)
        single = [entry for entry in entries if not entry.combination]
        if single:
            candidates = sorted({entry.target for entry in single})
            round_trip = [target for target in candidates if self._leads_back(target, via)]
            target = (round_trip or candidates)[-1]
            if via != code:
                outcome = "parent"
            elif len(single) == 1 and not single[0].approximate:
                outcome = "exact"
            else:
                outcome = "approximate"
            return Icd9Choice(outcome, (target,), via)
        scenario = min(entry.scenario for entry in entries)
        lists: dict[int, list[str]] = {}
        for entry in entries:
            if entry.scenario == scenario:
                lists.setdefault(entry.choice_list, []).append(entry.target)
        targets = tuple(sorted({max(choices) for choices in lists.values()}))
        return Icd9Choice("parent" if via != code else "combination", targets, via)

    def _leads_back(self, icd9: str, icd10: str) -> bool:
        return any(entry.target == icd10 and not entry.no_map for entry in self._forward.get(icd9, ()))
