"""The strip shortcut of CSV reading: a column is left unstripped only when stripping changes nothing."""

from __future__ import annotations

import random

import polars as pl
import pyarrow as pa

from sparseehr_mcore.data.reading import _needs_strip

# ASCII and Unicode whitespace, a control character that is not whitespace, multi-byte letters.
ALPHABET = ["a", "7", " ", "\t", "\r", "\n", "\x0b", "\x1c", "\u00a0", "\u0085", "\u3000", "\u200b", "é", "患"]


def strip_changes(values: list[str | None]) -> bool:
    series = pl.Series(values, dtype=pl.Utf8)
    return not series.str.strip_chars().replace("", None).equals(series, null_equal=True)


def test_a_column_is_left_unstripped_only_when_stripping_changes_nothing():
    rng = random.Random(3)
    for _ in range(3000):
        values = [None if rng.random() < 0.1 else "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 4)))
                  for _ in range(rng.randint(1, 6))]
        array = pa.array(values, pa.string())
        if len(values) > 1 and rng.random() < 0.3:  # a sliced array: non-zero offset
            array, values = array.slice(1), values[1:]
        if strip_changes(values):
            assert _needs_strip(array), values


def test_plain_columns_skip_the_strip():
    assert not _needs_strip(pa.array(["E119", "I10", None, "99213"], pa.string()))
    assert _needs_strip(pa.array(["E119", " I10"], pa.string()))
    assert _needs_strip(pa.array(["E119", ""], pa.string()))  # an empty string must become null
