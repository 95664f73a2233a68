"""Stable patient hashing: which bucket and shard a patient's rows go to, and which split it is in.

The key is FNV-1a (64-bit) of the patient id's UTF-8 bytes, finished with the splitmix64 mixer so
the top bits are well spread: the same on every machine and library version (unlike `hash()` or
polars' hash), and vectorised over Arrow buffers so hashing costs little next to reading. Buckets
and shards are ranges of the key's top 32 bits, so shard s holds buckets s*k .. s*k+k-1 whatever k
is, and patients in bucket order, then key order, are in one global order however the work was
cut: 1 shard and 4 shards concatenate to the same dataset bytes.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

SPLITS = ("train", "valid", "test")
FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def stable_hash64(texts: pl.Series) -> np.ndarray:
    """uint64 hash of each string (FNV-1a over its UTF-8 bytes, then splitmix64)."""
    array = pa.chunked_array(texts.cast(pl.Utf8).to_arrow()).cast(pa.large_string()).combine_chunks()
    if array.null_count:
        raise ValueError("stable_hash64: null strings have no hash")
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[array.offset : array.offset + len(array) + 1]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    starts, lengths = offsets[:-1], np.diff(offsets)
    hashes = np.full(len(array), FNV_OFFSET, dtype=np.uint64)
    # Ids come in a few lengths: per length, a strided view of the bytes gathers the strings as a
    # matrix whose columns are folded in one vector operation each (no loop over strings, no hash
    # table of distinct ids).
    with np.errstate(over="ignore"):  # multiplication modulo 2^64 is the point
        present = np.flatnonzero(np.bincount(lengths)) if len(lengths) else np.zeros(0, np.int64)
        for length in present[present > 0]:  # "" hashes to FNV_OFFSET
            rows = np.flatnonzero(lengths == length)
            characters = np.lib.stride_tricks.as_strided(data, (len(data) - length + 1, length), (1, 1))[starts[rows]]
            folded = hashes[rows]
            for column in range(int(length)):
                folded ^= characters[:, column]
                folded *= FNV_PRIME
            hashes[rows] = folded
        return _splitmix64(hashes)


def patient_keys(ids: pl.Series) -> pl.Series:
    """UInt64 key per patient id."""
    return pl.Series("key", stable_hash64(ids), dtype=pl.UInt64)


def bucket_of(keys: pl.Series, num_buckets: int) -> pl.Series:
    """Bucket index in [0, num_buckets): the key's top 32 bits scaled to the bucket count."""
    high = keys.to_numpy().astype(np.uint64) >> np.uint64(32)
    return pl.Series("bucket", (high * np.uint64(num_buckets)) >> np.uint64(32), dtype=pl.Int64)


def split_of(ids: pl.Series, *, seed: int, fractions: tuple[float, float, float]) -> pl.Series:
    """'train' / 'valid' / 'test' per patient from a seeded hash (independent of the bucket key).

    The patient's fraction u = hash(f"{seed}:{id}") / 2^64 lands in the first split whose cumulative
    fraction exceeds it.
    """
    seeded = ids.cast(pl.Utf8).to_frame("id").select((pl.lit(f"{seed}:") + pl.col("id")).alias("seeded"))["seeded"]
    # 53 bits: the fraction is exact in a float64.
    fraction = (stable_hash64(seeded) >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    which = np.minimum(np.searchsorted(np.cumsum(fractions), fraction, side="right"), len(SPLITS) - 1)
    return pl.Series("split", SPLITS, dtype=pl.Utf8).gather(which) if len(ids) else pl.Series("split", [], dtype=pl.Utf8)
