"""The vectorised bucket encoder gives exactly the ids of the per-timeline encoder."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter

import numpy as np
import polars as pl

from sparseehr_mcore.data.buckets import TIMELINE_EVENT_COLUMNS, TIMELINE_PATIENT_COLUMNS, iter_timelines
from sparseehr_mcore.tokenization.registry import resolve


def bucket_frames(seed: int = 3):
    rng = random.Random(seed)
    patients, events = [], []
    for key, patient in enumerate(f"p{i}" for i in range(60)):
        split = rng.choice(["train", "train", "valid"])
        static = [rng.choice([None, "40-44", "90+"]), rng.choice([None, "F", "M"]), rng.choice([None, "NE"])]
        patients.append((key, patient, split, *static))
        for day in sorted(rng.sample(range(500), rng.randint(1, 6))):
            codes = sorted(rng.sample(["E119", "I10", "N179", "Z999"], rng.randint(1, 3)))
            for code in codes:
                events.append((key, patient, split, dt.date(2020, 1, 1) + dt.timedelta(days=day), "ICD10CM", code))
            if rng.random() < 0.5:
                events.append((key, patient, split, dt.date(2020, 1, 1) + dt.timedelta(days=day), "LOINC", "1-2"))
    patient_frame = pl.DataFrame(patients, schema=list(TIMELINE_PATIENT_COLUMNS), orient="row")
    event_frame = pl.DataFrame(events, schema=list(TIMELINE_EVENT_COLUMNS), orient="row")
    return patient_frame, event_frame


def test_vectorised_terms_and_ids_match_the_per_timeline_path():
    patients, events = bucket_frames()
    plugin = resolve("typed-codes")
    slow_terms = Counter()
    for split, timeline in iter_timelines(patients, events):
        if split == "train":
            slow_terms.update(plugin.terms(timeline))
    assert plugin.count_bucket_terms(patients, events) == slow_terms
    # A high min_count leaves some codes and attributes out, so typed unknowns are exercised too.
    tokenizer = plugin.from_counts(slow_terms, min_count=30)
    ids, lengths = tokenizer.encode_bucket(patients, events)
    slow = [tokenizer.encode(timeline) for _, timeline in iter_timelines(patients, events)]
    assert lengths.tolist() == [len(s) for s in slow]
    assert np.array_equal(ids, np.concatenate(slow))
    assert np.isin(ids, list(tokenizer.unknown_ids)).any()


def test_time_gaps_plugin_uses_the_per_timeline_path():
    patients, events = bucket_frames()
    plugin = resolve("time-gaps")
    tokenizer = plugin.from_counts(plugin.count_bucket_terms(patients, events), min_count=1)
    assert tokenizer.encode_bucket(patients, events) is None
