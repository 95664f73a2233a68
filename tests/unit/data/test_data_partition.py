"""Patient hashing: nested bucket/shard ranges, stable keys, seeded splits."""

from __future__ import annotations

import numpy as np
import polars as pl

from sparseehr_mcore.data.partition import bucket_of, patient_keys, split_of, stable_hash64


def ids(n: int = 5000) -> pl.Series:
    return pl.Series("patient_id", [f"patient-{i}" for i in range(n)])


def reference_hash(text: str) -> int:
    """FNV-1a 64 then splitmix64, one byte at a time in plain Python (the definition)."""
    value = 0xCBF29CE484222325
    for byte in text.encode("utf-8"):
        value = ((value ^ byte) * 0x100000001B3) % 2**64
    value ^= value >> 30
    value = (value * 0xBF58476D1CE4E5B9) % 2**64
    value ^= value >> 27
    value = (value * 0x94D049BB133111EB) % 2**64
    return value ^ (value >> 31)


def test_keys_are_stable_values():
    keys = patient_keys(pl.Series(["10006", "10006", "abc"]))
    assert keys.dtype == pl.UInt64 and keys[0] == keys[1] != keys[2]
    assert keys[2] == 0x0DD490490804B508  # golden: the same on every machine and library version


def test_vectorised_hash_matches_the_definition():
    texts = ["", "a", "10006", "ü-Ω-患者", "x" * 70, *(f"patient-{i}" for i in range(200))]
    series = pl.Series(texts)[1:]  # a sliced series: non-zero Arrow offset
    assert stable_hash64(series).tolist() == [reference_hash(t) for t in texts[1:]]


def test_buckets_nest_inside_shards_and_follow_key_order():
    keys = patient_keys(ids())
    for shards, per_shard in ((1, 7), (4, 3), (16, 1)):
        buckets = bucket_of(keys, shards * per_shard).to_numpy()
        assert np.array_equal(buckets // per_shard, bucket_of(keys, shards).to_numpy())
        order = np.argsort(keys.to_numpy(), kind="stable")
        assert np.all(np.diff(buckets[order]) >= 0)  # key order is bucket order
        assert set(buckets) == set(range(shards * per_shard))


def test_splits_follow_fractions_and_seed():
    patients = ids()
    first = split_of(patients, seed=1, fractions=(0.8, 0.1, 0.1))
    assert first.equals(split_of(patients, seed=1, fractions=(0.8, 0.1, 0.1)))
    shares = first.value_counts(normalize=True).sort("split")
    assert abs(dict(shares.iter_rows())["train"] - 0.8) < 0.03
    assert not first.equals(split_of(patients, seed=2, fractions=(0.8, 0.1, 0.1)))
    assert set(split_of(patients, seed=1, fractions=(1.0, 0.0, 0.0))) == {"train"}
