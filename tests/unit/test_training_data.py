"""One patient per sequence: truncation keeps demographics and whole bundles, padding is masked, the
order is seeded and blending goes through Megatron-Core's builder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder, get_bin_path, get_idx_path

from sparseehr_mcore.training.data import (
    SpecialIds,
    build_patient_datasets,
    fit_to_length,
    micro_batches,
    shuffle_within_bundles,
)

SPECIAL = SpecialIds(pad=0, eod=1, bundle_begin=2)
END = 3  # bundle end
AGE, SEX = 10, 11


def timeline(*bundles: list[int]) -> np.ndarray:
    ids = [AGE, SEX]
    for codes in bundles:
        ids += [SPECIAL.bundle_begin, *codes, END]
    return np.array(ids + [SPECIAL.eod])


def test_bundle_shuffle_moves_codes_only_within_their_bundle():
    special = SpecialIds(pad=0, eod=1, bundle_begin=2, bundle_end=END, shuffle_bundles=True)
    ids = timeline([20, 21, 22, 23], [30], [40, 41, 42, 43, 44])
    orders = set()
    for seed in range(20):
        out = shuffle_within_bundles(ids, special, np.random.default_rng(seed))
        assert out[:3].tolist() == [AGE, SEX, 2] and out[-1] == special.eod
        assert np.array_equal(out == 2, ids == 2) and np.array_equal(out == END, ids == END)
        assert sorted(out[3:7]) == [20, 21, 22, 23] and out[9] == 30 and sorted(out[12:17]) == [40, 41, 42, 43, 44]
        orders.add(tuple(out))
    assert len(orders) > 10  # really shuffled, and differently per seed
    again = shuffle_within_bundles(ids, special, np.random.default_rng(3))
    assert np.array_equal(again, shuffle_within_bundles(ids, special, np.random.default_rng(3)))


def test_short_histories_are_right_padded():
    ids = timeline([20, 21])
    out = fit_to_length(ids, 10, SPECIAL)
    assert out.tolist() == [AGE, SEX, 2, 20, 21, 3, 1, 0, 0, 0]


def test_long_histories_keep_demographics_and_the_latest_whole_bundles():
    ids = timeline([20, 21, 22], [30, 31], [40])  # 2 + 5 + 4 + 3 + 1 = 15 ids
    out = fit_to_length(ids, 10, SPECIAL)
    # The budget after the prefix is 8 ids: [.., 22, END] of the first bundle would fit partially;
    # the kept history starts at the next whole bundle instead, then pads.
    assert out.tolist() == [AGE, SEX, 2, 30, 31, 3, 2, 40, 3, 1]
    out = fit_to_length(ids, 9, SPECIAL)
    assert out.tolist() == [AGE, SEX, 2, 40, 3, 1, 0, 0, 0]


def test_a_prefix_longer_than_the_sequence_is_cut():
    assert fit_to_length(timeline([20]), 1, SPECIAL).tolist() == [AGE]


def write_dataset(prefix: str, patients: list[np.ndarray]) -> None:
    builder = IndexedDatasetBuilder(get_bin_path(prefix), dtype=np.int32)
    for ids in patients:
        builder.add_document(torch.from_numpy(ids.astype(np.int32)), [len(ids)])
    builder.finalize(get_idx_path(prefix))


@pytest.fixture
def two_datasets(tmp_path, single_process_world):
    a = [timeline([20 + i], [30 + i, 31]) for i in range(6)]
    b = [timeline([40 + i]) for i in range(3)]
    write_dataset(str(tmp_path / "a"), a)
    write_dataset(str(tmp_path / "b"), b)
    return str(tmp_path / "a"), str(tmp_path / "b")


def build(prefixes, weights, num_samples, seed=7):
    train, valid = build_patient_datasets(
        train=(prefixes, weights), valid=None, sequence_length=12, special=SPECIAL,
        num_train_samples=num_samples, num_valid_samples=0, seed=seed,
    )  # fmt: skip
    assert valid is None
    return train


def test_samples_are_whole_patients_with_masked_padding(two_datasets):
    dataset = build([two_datasets[0]], None, 6)
    seen = set()
    for index in range(len(dataset)):
        sample = dataset[index]
        tokens, labels, mask = sample["tokens"], sample["labels"], sample["loss_mask"]
        assert tokens.shape == labels.shape == mask.shape == (12,)
        assert tokens[:2].tolist() == [AGE, SEX]
        assert torch.equal(tokens[1:], labels[:-1])
        assert (mask[labels == SPECIAL.pad] == 0).all()
        assert (mask[tokens == SPECIAL.eod] == 0).all()
        assert mask.sum() == int((labels != SPECIAL.pad).sum())
        seen.add(int(tokens[3]))
    assert seen == {20, 21, 22, 23, 24, 25}  # one epoch visits every patient once


def test_order_is_seeded_and_epochs_are_reshuffled(two_datasets):
    first = [build([two_datasets[0]], None, 12)[i]["tokens"][3].item() for i in range(12)]
    again = [build([two_datasets[0]], None, 12)[i]["tokens"][3].item() for i in range(12)]
    other_seed = [build([two_datasets[0]], None, 12, seed=8)[i]["tokens"][3].item() for i in range(12)]
    assert first == again and first != other_seed
    assert sorted(first[:6]) == sorted(first[6:]) and first[:6] != first[6:]


def test_blending_follows_the_weights(two_datasets):
    dataset = build(list(two_datasets), [0.25, 0.75], 400)
    from_b = sum(dataset[i]["tokens"][3].item() >= 40 for i in range(len(dataset)))
    assert abs(from_b / len(dataset) - 0.75) < 0.02


def test_micro_batches_split_global_samples_between_data_parallel_ranks(two_datasets):
    dataset = build([two_datasets[0]], None, 8)
    rank_batches = [
        [b["tokens"][:, 3].tolist() for b in micro_batches(dataset, start_sample=0, micro_batch_size=2, data_parallel_rank=r, data_parallel_size=2)]
        for r in range(2)
    ]
    everything = [dataset[i]["tokens"][3].item() for i in range(8)]
    assert rank_batches[0] == [everything[0:2], everything[4:6]]
    assert rank_batches[1] == [everything[2:4], everything[6:8]]
    resumed = [b["tokens"][:, 3].tolist() for b in micro_batches(dataset, start_sample=4, micro_batch_size=2, data_parallel_rank=0, data_parallel_size=1)]
    assert resumed == [everything[4:6], everything[6:8]]
