"""Typed codes plus a time-gap token before every bundle after the first (plugin `time-gaps`).

The gap is the number of days since the previous bundle, in coarse buckets (`GAP_BUCKETS`), so a
model sees how irregular a timeline is (the paper's "irregular timelines") without a token per day.
"""

from __future__ import annotations

from sparseehr_mcore.data.timeline import DayBundle
from sparseehr_mcore.tokenization.typed_codes import TypedCodeTokenizerBase

# (upper bound in days, label); the last bucket is open-ended.
GAP_BUCKETS = ((7, "1w"), (30, "1m"), (91, "3m"), (182, "6m"), (365, "1y"), (730, "2y"))
GAP_OPEN = "2y+"


def gap_token(days: int) -> str:
    """The gap token for a gap of `days` days, e.g. 10 -> '[GAP:1m]'."""
    for bound, label in GAP_BUCKETS:
        if days <= bound:
            return f"[GAP:{label}]"
    return f"[GAP:{GAP_OPEN}]"


GAP_TOKENS = [f"[GAP:{label}]" for _, label in GAP_BUCKETS] + [f"[GAP:{GAP_OPEN}]"]


class TimeGapTokenizer(TypedCodeTokenizerBase):
    """Typed codes with `[GAP:...]` tokens between bundles (reserved specials, always present)."""

    name = "time-gaps"
    version = "1"
    bulk_term_counts = True  # gap tokens are specials: the terms are the typed-code ones
    bulk_encoding = False  # the vectorised encoder writes no gap tokens

    @classmethod
    def extra_specials(cls) -> list[str]:
        return list(GAP_TOKENS)

    def _between(self, previous: DayBundle | None, bundle: DayBundle) -> list[int]:
        if previous is None or previous.day is None or bundle.day is None:
            return []
        return [self.vocabulary.ids[gap_token((bundle.day - previous.day).days)]]

    def _decode_between(self, token: str) -> bool:
        return token in GAP_TOKENS
