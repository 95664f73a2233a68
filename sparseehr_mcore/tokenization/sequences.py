"""Cutting a patient's token sequence to a length, the same way wherever a model reads one."""

from __future__ import annotations

import numpy as np


def truncate_left(patient_ids: np.ndarray, length: int, *, bundle_begin: int) -> np.ndarray:
    """At most `length` ids: the demographics prefix, then the most recent whole bundles that fit.

    Args:
        patient_ids: one patient's ids, demographics first (the prefix ends at the first bundle begin).
        length: the most ids wanted.
        bundle_begin: the bundle-begin id.

    Returns:
        `patient_ids` itself when it fits; else the prefix and a tail that starts at a bundle begin
        (or the first `length` ids when the prefix alone is too long).
    """
    ids = np.asarray(patient_ids)
    if len(ids) <= length:
        return ids
    begins = np.flatnonzero(ids == bundle_begin)
    prefix = int(begins[0]) if len(begins) else 0
    if prefix >= length:  # a prefix longer than the sequence: keep what fits of it
        return ids[:length]
    tail = ids[len(ids) - (length - prefix):]
    tail_begins = np.flatnonzero(tail == bundle_begin)
    if len(tail_begins):  # start the kept history at a whole bundle
        tail = tail[tail_begins[0]:]
    return np.concatenate([ids[:prefix], tail])
