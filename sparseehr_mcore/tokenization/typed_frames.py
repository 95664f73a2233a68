"""Vectorised typed-code encoding and term counting over a whole bucket of timelines.

The per-timeline `encode` loop costs microseconds per event in Python; at tens of millions of
patients that dominates the run. These functions build the same ids with polars/numpy from the
bucket frames (`buckets.TIMELINE_PATIENT_COLUMNS` / `TIMELINE_EVENT_COLUMNS`, both in dataset order).
`tests/unit/data/test_data_typed_frames.py` checks they equal the per-timeline path exactly.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import polars as pl

from sparseehr_mcore.data.timeline import OTHER_SYSTEM_RANK, STATIC_KEYS, SYSTEM_RANK, patient_positions

Layout = tuple[np.ndarray, np.ndarray]  # (all ids, length per patient)


def _type_expr(system_types: dict[str, str]) -> pl.Expr:
    return pl.col("system").replace(system_types)


def _static_tokens(patients: pl.DataFrame, static_types: dict[str, str]) -> list[pl.Series]:
    return [patients.select((pl.lit(f"{static_types[key]}:") + pl.col(key)).alias(key))[key] for key in STATIC_KEYS]


def _event_tokens(codes: pl.DataFrame, system_types: dict[str, str]) -> pl.Series:
    """The token of each (system, code) row of `codes`."""
    return codes.select((_type_expr(system_types) + pl.lit(":") + pl.col("code")).alias("token"))["token"]


def count_terms(patients: pl.DataFrame, events: pl.DataFrame, *, system_types, static_types) -> Counter:
    """Typed-code terms of the training-split patients, counted (as `terms` would, per timeline)."""
    train = patients.filter(pl.col("split") == "train")
    counts: Counter = Counter()
    for series in _static_tokens(train, static_types):
        counts.update(dict(series.drop_nulls().value_counts().iter_rows()))
    # Count per distinct code, then name the (few) codes: no token string per event.
    per_code = events.filter(pl.col("split") == "train").group_by("system", "code").len()
    for token, count in zip(_event_tokens(per_code, system_types), per_code["len"]):
        counts[token] += count
    return counts


def _ids(tokens: pl.Series, vocab: dict[str, int], unknown_by_type: dict[str, int], unk: int) -> np.ndarray:
    known = tokens.replace_strict(vocab, default=None, return_dtype=pl.Int64)
    types = tokens.str.split_exact(":", 1).struct.field("field_0")
    fallback = types.replace_strict(unknown_by_type, default=unk, return_dtype=pl.Int64)
    return known.fill_null(fallback).to_numpy()


def _by_frequency(events: pl.DataFrame, event_ids: np.ndarray, bundle: np.ndarray, unknown_ids) -> np.ndarray:
    """`event_ids` reordered inside each bundle by (system rank, system, unknown, id); events stay
    in their bundles because the bundle number is the first key."""
    systems = events.select(
        rank=pl.col("system").replace_strict(SYSTEM_RANK, default=OTHER_SYSTEM_RANK, return_dtype=pl.Int64),
        system=pl.col("system").rank("dense"),
    )
    unknown = np.isin(event_ids, np.fromiter(unknown_ids, dtype=np.int64))
    order = np.lexsort((event_ids, unknown, systems["system"].to_numpy(), systems["rank"].to_numpy(), bundle))
    return event_ids[order]


def encode_frames(
    patients: pl.DataFrame, events: pl.DataFrame, *, tokenizer, system_types, static_types, by_frequency: bool = False
) -> Layout:
    """Ids of every patient of the bucket, concatenated, and each patient's length.

    Args:
        patients: the bucket's patients in dataset order (`TIMELINE_PATIENT_COLUMNS`).
        events: their events in the same patient order, then by day and bundle order.
        tokenizer: a typed-code tokenizer (its vocabulary and special ids).
        system_types, static_types: the scheme's token type per code system / static attribute.
        by_frequency: order each bundle's codes by code system, then by id (the vocabulary's
            count order), unknowns last in their system: the `frequency` bundle order.
    """
    vocab, special = tokenizer.vocabulary.ids, tokenizer.special_ids
    unknown = {key[4:]: value for key, value in special.items() if key.startswith("unk:")}
    unk = special["unk"]
    n_patients = patients.height
    p = patient_positions(patients, events)
    dates = events["date"].to_physical().to_numpy()
    new_patient = np.ones(len(p), dtype=bool)
    new_patient[1:] = p[1:] != p[:-1]
    new_day = new_patient.copy()
    new_day[1:] |= dates[1:] != dates[:-1]
    # Static prefix: ids per key, -1 where the attribute is absent.
    static = np.full((n_patients, len(STATIC_KEYS)), -1, dtype=np.int64)
    for column, key in enumerate(STATIC_KEYS):
        # Ids per distinct value (a handful: age bands, sexes, regions), then one lookup.
        values = patients[key].cast(pl.Utf8)
        distinct = values.drop_nulls().unique().sort()
        if distinct.len():
            ids = _ids(f"{static_types[key]}:" + distinct, vocab, unknown, unk)
            lookup = dict(zip(distinct.to_list(), ids.tolist()))
            static[:, column] = values.replace_strict(lookup, default=None, return_dtype=pl.Int64).fill_null(-1).to_numpy()
    n_static = (static >= 0).sum(axis=1)
    n_events = np.bincount(p, minlength=n_patients)
    n_days = np.bincount(p[new_day], minlength=n_patients)
    lengths = n_static + n_events + 2 * n_days + 1
    starts = np.cumsum(lengths) - lengths
    out = np.empty(int(lengths.sum()), dtype=np.int64)
    # Event positions: after the prefix, the events before it in the patient, and 2 ids per earlier
    # bundle plus this bundle's [BEGIN].
    first_event = np.cumsum(n_events) - n_events
    rank = np.arange(len(p)) - first_event[p]
    day_in_patient = np.cumsum(new_day) - 1
    first_day = (np.cumsum(n_days) - n_days)[p]
    day_rank = day_in_patient - first_day
    event_pos = starts[p] + n_static[p] + rank + 2 * day_rank + 1
    # Ids per distinct code, then one join: no token string per event.
    codes = events.select("system", "code").unique()
    codes = codes.with_columns(id=pl.Series(_ids(_event_tokens(codes, system_types), vocab, unknown, unk)))
    event_ids = events.select("system", "code").join(codes, on=["system", "code"], how="left",
                                                     maintain_order="left")["id"].to_numpy()
    if by_frequency:
        event_ids = _by_frequency(events, event_ids, np.cumsum(new_day), tokenizer.unknown_ids)
    out[event_pos] = event_ids
    begin_pos = event_pos[new_day] - 1
    out[begin_pos] = special["bundle_begin"]
    day_sizes = np.diff(np.append(np.flatnonzero(new_day), len(p)))
    out[begin_pos + day_sizes + 1] = special["bundle_end"]
    out[starts + lengths - 1] = special["eod"]
    for column in range(len(STATIC_KEYS)):
        has = static[:, column] >= 0
        offset = (static[:, :column] >= 0).sum(axis=1)
        out[(starts + offset)[has]] = static[has, column]
    return out, lengths
