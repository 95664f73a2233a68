"""The vectorised bucket paths give exactly what the per-timeline ones give, for every plugin that
declares them; a plugin that does not declare them gets the per-timeline paths."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter

import numpy as np
import polars as pl
import pytest

from sparseehr_mcore.data.buckets import TIMELINE_EVENT_COLUMNS, TIMELINE_PATIENT_COLUMNS, iter_timelines
from sparseehr_mcore.tokenization.registry import available, resolve
from sparseehr_mcore.tokenization.typed_codes import BUNDLE_ORDERS


def bucket_frames(seed: int = 3):
    rng = random.Random(seed)
    patients, events = [], []
    for key, patient in enumerate(f"p{i}" for i in range(60)):
        split = rng.choice(["train", "train", "valid"])
        static = [rng.choice([None, "40-44", "90+"]), rng.choice([None, "F", "M"]), rng.choice([None, "NE"])]
        patients.append((key, patient, split, *static))
        for day in sorted(rng.sample(range(500), rng.randint(1, 6))):
            date = dt.date(2020, 1, 1) + dt.timedelta(days=day)
            for code in sorted(rng.sample(["E119", "I10", "N179", "Z999"], rng.randint(1, 3))):
                events.append((key, patient, split, date, "ICD10CM", code, True))
            if rng.random() < 0.5:
                events.append((key, patient, split, date, "CPT", rng.choice(["99213", "80061"]), True))
            if rng.random() < 0.5:
                events.append((key, patient, split, date, "LOINC", "1-2", True))
    patient_frame = pl.DataFrame(patients, schema=list(TIMELINE_PATIENT_COLUMNS), orient="row")
    event_frame = pl.DataFrame(events, schema=list(TIMELINE_EVENT_COLUMNS), orient="row")
    return patient_frame, event_frame


def slow_terms(plugin, patients, events) -> Counter:
    counts = Counter()
    for split, timeline in iter_timelines(patients, events):
        if split == "train":
            counts.update(plugin.terms(timeline))
    return counts


@pytest.mark.parametrize("name", available())
def test_every_plugin_declaring_bulk_paths_matches_its_per_timeline_paths(name):
    patients, events = bucket_frames()
    plugin = resolve(name)
    terms = slow_terms(plugin, patients, events)
    fast_terms = plugin.count_bucket_terms(patients, events)
    assert fast_terms is None or fast_terms == terms
    for order in BUNDLE_ORDERS:
        # A high min_count leaves some codes and attributes out, so typed unknowns are exercised too.
        tokenizer = plugin.from_counts(terms, min_count=30, bundle_order=order)
        layout = tokenizer.encode_bucket(patients, events)
        if layout is None:
            assert not plugin.declares("bulk_encoding")
            continue
        ids, lengths = layout
        slow = [tokenizer.encode(timeline) for _, timeline in iter_timelines(patients, events)]
        assert lengths.tolist() == [len(s) for s in slow]
        assert np.array_equal(ids, np.concatenate(slow))
        assert np.isin(ids, list(tokenizer.unknown_ids)).any()


def test_the_default_plugin_declares_both_bulk_paths():
    plugin = resolve("typed-codes")
    assert plugin.declares("bulk_term_counts") and plugin.declares("bulk_encoding")
    assert resolve("time-gaps").declares("bulk_term_counts") and not resolve("time-gaps").declares("bulk_encoding")


def test_a_subclass_that_declares_nothing_gets_the_per_timeline_paths():
    base = resolve("typed-codes")

    class Reversed(base):  # changes `encode`, inherits everything else
        def encode(self, timeline):
            return list(reversed(super().encode(timeline)))

    patients, events = bucket_frames()
    assert Reversed.count_bucket_terms(patients, events) is None
    assert Reversed.from_counts(Counter({"DX:E119": 1}), min_count=1).encode_bucket(patients, events) is None


def test_frequency_order_puts_common_codes_first_within_each_code_system():
    patients, events = bucket_frames()
    plugin = resolve("typed-codes")
    terms = slow_terms(plugin, patients, events)
    tokenizer = plugin.from_counts(terms, min_count=1, bundle_order="frequency")
    ids, _ = tokenizer.encode_bucket(patients, events)
    tokens = [tokenizer.tokens[i] for i in ids]
    bundles, current = [], None
    for token in tokens:
        if token == "[BEGIN]":
            current = []
        elif token == "[END]":
            bundles.append(current)
            current = None
        elif current is not None:
            current.append(token)
    for bundle in bundles:
        diagnoses = [t for t in bundle if t.startswith("DX:")]
        assert [terms[t] for t in diagnoses] == sorted((terms[t] for t in diagnoses), reverse=True)
        assert bundle[: len(diagnoses)] == diagnoses  # diagnoses still come before procedures
    assert any(b != sorted(b) for b in bundles)  # not simply the sorted order
