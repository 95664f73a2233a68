"""Training samples: one patient per sequence, through Megatron-Core's dataset builders.

A sample is one patient's timeline (one document of an indexed dataset written by
tools/preprocess_ehr.py), so no patient ever attends to another (DESIGN decision 5). Histories longer
than the sequence are truncated from the left, keeping the demographics prefix and starting the kept
history at a bundle boundary; shorter ones are padded, and padding never contributes to the loss.

`PatientDataset` is a Megatron-Core `MegatronDataset`, so `BlendedMegatronDatasetBuilder` blends
several datasets by weight and builds the train and validation splits. Sample `i` always maps to the
same patient (a seeded shuffle per epoch), which makes the data order of a resumed run identical.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
from megatron.core.datasets.blended_megatron_dataset_config import BlendedMegatronDatasetConfig
from megatron.core.datasets.indexed_dataset import IndexedDataset
from megatron.core.datasets.megatron_dataset import MegatronDataset
from megatron.core.datasets.utils import Split

from sparseehr_mcore.config import ConfigError
from sparseehr_mcore.tokenization.sequences import truncate_left


@dataclass(frozen=True)
class SpecialIds:
    """The token ids the sampler needs to know about, and whether it shuffles bundles."""

    pad: int
    eod: int
    bundle_begin: int  # the first one in a sequence ends the demographics prefix
    bundle_end: int = -1
    shuffle_bundles: bool = False  # the tokenizer's bundle_order is "shuffled"


def shuffle_within_bundles(patient_ids: np.ndarray, special: SpecialIds, rng: np.random.Generator) -> np.ndarray:
    """The codes of every bundle in a random order; delimiters and everything between bundles stay.

    One sort of random keys within bundle numbers: codes never leave their bundle.
    """
    ids = np.asarray(patient_ids)
    begins = ids == special.bundle_begin
    depth = np.cumsum(begins) - np.cumsum(ids == special.bundle_end)
    inside = (depth > 0) & ~begins  # strictly between a [BEGIN] and its [END]
    if not inside.any():
        return ids
    bundle = np.cumsum(begins)[inside]
    order = np.lexsort((rng.random(int(inside.sum())), bundle))
    shuffled = ids.copy()
    shuffled[inside] = ids[inside][order]
    return shuffled


def fit_to_length(patient_ids: np.ndarray, length: int, special: SpecialIds) -> np.ndarray:
    """Left-truncate (keeping the demographics prefix and whole bundles) or right-pad to `length`.

    Args:
        patient_ids: one patient's token ids, demographics first, ending with EOD.
        length: the number of ids wanted (sequence length + 1 for the shifted labels).
        special: pad, EOD and bundle-begin ids.

    Returns:
        int64 ids of exactly `length`, padded with `special.pad`.
    """
    ids = truncate_left(np.asarray(patient_ids, dtype=np.int64), length, bundle_begin=special.bundle_begin)
    return np.pad(ids, (0, length - len(ids)), constant_values=special.pad)


@dataclass(kw_only=True)
class PatientDatasetConfig(BlendedMegatronDatasetConfig):
    """Megatron-Core's dataset config plus the special ids of our vocabulary."""

    pad_id: int
    eod_id: int
    bundle_begin_id: int
    bundle_end_id: int = -1
    shuffle_bundles: bool = False

    @property
    def special_ids(self) -> SpecialIds:
        return SpecialIds(pad=self.pad_id, eod=self.eod_id, bundle_begin=self.bundle_begin_id,
                          bundle_end=self.bundle_end_id, shuffle_bundles=self.shuffle_bundles)


class PatientDataset(MegatronDataset):
    """One patient per sample over an `IndexedDataset` of one document per patient."""

    def __init__(self, dataset, dataset_path, indices, num_samples, index_split, config) -> None:
        super().__init__(dataset, dataset_path, indices, num_samples, index_split, config)
        self.sample_to_patient = self._shuffled_epochs()

    @staticmethod
    def numel_low_level_dataset(low_level_dataset: IndexedDataset) -> int:
        return len(low_level_dataset)

    @staticmethod
    def build_low_level_dataset(dataset_path: str, config: PatientDatasetConfig) -> IndexedDataset:
        return IndexedDataset(dataset_path, multimodal=False, mmap=config.mmap_bin_files)

    @staticmethod
    def _key_config_attributes() -> list[str]:
        return ["random_seed", "sequence_length", "pad_id", "eod_id", "bundle_begin_id", "bundle_end_id",
                "shuffle_bundles"]

    def _shuffled_epochs(self) -> np.ndarray:
        """Patients in a fresh seeded order each epoch, as many epochs as `num_samples` needs."""
        patients = len(self.indices)
        wanted = self.num_samples if self.num_samples is not None else patients
        if patients == 0 or wanted == 0:
            return np.zeros(0, dtype=np.int64)
        epochs = -(-wanted // patients)
        seed = self.config.random_seed + 7919 * self.index_split.value
        orders = [np.random.default_rng([seed, epoch]).permutation(self.indices) for epoch in range(epochs)]
        return np.concatenate(orders)[:wanted].astype(np.int64)

    def __len__(self) -> int:
        return len(self.sample_to_patient)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        patient = self.dataset[int(self.sample_to_patient[index])]
        special = self.config.special_ids
        if len(patient) == 0 or patient[-1] != special.eod:
            patient = np.append(patient, special.eod)
        if special.shuffle_bundles:  # a fresh order for every sample, so for every epoch; resumes replay it
            rng = np.random.default_rng([self.config.random_seed, self.index_split.value, index])
            patient = shuffle_within_bundles(patient, special, rng)
        ids = torch.from_numpy(fit_to_length(patient, self.config.sequence_length + 1, special))
        tokens, labels = ids[:-1].clone(), ids[1:].clone()
        # No loss on padding, nor after the end of the record (Megatron's eod_mask_loss).
        loss_mask = ((labels != special.pad) & (tokens != special.eod)).float()
        return {
            "tokens": tokens,
            "labels": labels,
            "loss_mask": loss_mask,
            "position_ids": torch.arange(self.config.sequence_length, dtype=torch.int64),
        }


def build_patient_datasets(
    *,
    train: tuple[list[str], list[float] | None],
    valid: tuple[list[str], list[float] | None] | None,
    sequence_length: int,
    special: SpecialIds,
    num_train_samples: int,
    num_valid_samples: int,
    seed: int,
) -> tuple[MegatronDataset, MegatronDataset | None]:
    """The (blended) train and validation datasets, each sized to the samples the run will draw.

    Args:
        train: (dataset prefixes, weights). Give one weight per prefix (`resolve_data_sources`
            does): Megatron-Core then samples each dataset in as many epochs as its share of
            `num_train_samples` needs. Without weights it concatenates one epoch of each dataset,
            which can be shorter than the run.
        valid: the same for validation, or None.
        sequence_length: tokens per sample.
        special: pad, EOD and bundle-begin ids.
        num_train_samples: samples the run draws (`train_iters x global_batch_size`).
        num_valid_samples: samples one validation draws (0: no validation dataset).
        seed: the data order's seed.

    Raises:
        ConfigError: a dataset would run out before the run ends (before any compute, rather than a
            bare StopIteration mid-way).
    """
    if not num_valid_samples:
        valid = None
    config = PatientDatasetConfig(
        random_seed=seed,
        sequence_length=sequence_length,
        blend_per_split=[train, valid, None],
        pad_id=special.pad,
        eod_id=special.eod,
        bundle_begin_id=special.bundle_begin,
        bundle_end_id=special.bundle_end,
        shuffle_bundles=special.shuffle_bundles,
        mid_level_dataset_surplus=0.005,
    )
    sizes = [num_train_samples, num_valid_samples if valid else 0, 0]
    datasets = BlendedMegatronDatasetBuilder(PatientDataset, sizes, lambda: True, config).build()
    train_set, valid_set = datasets[Split.train.value], datasets[Split.valid.value]
    for name, dataset, wanted in (("training", train_set, num_train_samples), ("validation", valid_set, sizes[1])):
        if wanted and len(dataset) < wanted:
            raise ConfigError(
                f"the {name} blend holds {len(dataset)} samples but the run draws {wanted}: give every "
                "dataset of a blend a weight (resolve_data_sources does) so each is sampled over enough epochs"
            )
    return train_set, valid_set


def micro_batches(
    dataset: torch.utils.data.Dataset,
    *,
    start_sample: int,
    micro_batch_size: int,
    data_parallel_rank: int,
    data_parallel_size: int,
    num_workers: int = 0,
) -> Iterator[dict[str, torch.Tensor]]:
    """This rank's micro-batches from global sample `start_sample` on, in a fixed order.

    Global samples are consumed in blocks of `micro_batch_size x data_parallel_size`; rank r takes
    the r-th slice of each block (Megatron-LM's pretraining sampler). Every rank of a tensor- or
    pipeline-parallel group has the same data-parallel rank, so all of them read the same samples.
    """
    sampler = _RankBlockSampler(
        total=len(dataset),
        start_sample=start_sample,
        micro_batch_size=micro_batch_size,
        data_parallel_rank=data_parallel_rank,
        data_parallel_size=data_parallel_size,
    )
    return iter(torch.utils.data.DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers))


class _RankBlockSampler(torch.utils.data.Sampler):
    """Yields this rank's micro-batch of sample indices from each block of the global order."""

    def __init__(self, *, total, start_sample, micro_batch_size, data_parallel_rank, data_parallel_size):
        self.total = total
        self.start_sample = start_sample
        self.micro_batch_size = micro_batch_size
        self.offset = data_parallel_rank * micro_batch_size
        self.block = micro_batch_size * data_parallel_size

    def __iter__(self) -> Iterator[list[int]]:
        first = self.start_sample
        while first + self.block <= self.total:
            yield list(range(first + self.offset, first + self.offset + self.micro_batch_size))
            first += self.block

    def __len__(self) -> int:
        return max(0, (self.total - self.start_sample) // self.block)
