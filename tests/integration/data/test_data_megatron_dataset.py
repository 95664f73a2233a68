"""The written datasets feed Megatron-Core's GPTDataset through BlendedMegatronDatasetBuilder."""

from __future__ import annotations

import numpy as np
import pytest

from sparseehr_mcore.data.manifest import dataset_prefixes, read_manifest
from sparseehr_mcore.tokenization.metadata import load_tokenizer


def test_gpt_dataset_samples_come_from_the_written_tokens(shared_outputs, tmp_path):
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig

    output = shared_outputs["mimic-iii"]
    tokenizer = load_tokenizer(output / "tokenizer")
    prefixes = dataset_prefixes(output)
    config = GPTDatasetConfig(
        random_seed=1234,
        sequence_length=64,
        blend_per_split=[([prefixes["train"]], None), None, None],
        tokenizer=tokenizer,  # duck-typed: vocab_size, eod, pad, unique_identifiers
        reset_position_ids=True,
        reset_attention_mask=True,
        eod_mask_loss=True,
        path_to_cache=str(tmp_path / "cache"),
        mid_level_dataset_surplus=0.005,
    )
    train, _, _ = BlendedMegatronDatasetBuilder(GPTDataset, [40, 0, 0], lambda: True, config).build()
    assert len(train) >= 40
    vocabulary_ids = set(range(tokenizer.vocab_size))
    all_tokens = np.concatenate([train.dataset[i] for i in range(len(train.dataset))])
    for index in range(5):
        sample = train[index]
        tokens = sample["tokens"].numpy()
        assert tokens.shape == (64,) and set(tokens.tolist()) <= vocabulary_ids
        # A sample is a window of the concatenated patients: its first ids occur in the data.
        window = tokens[:4]
        hits = np.flatnonzero(np.all(np.lib.stride_tricks.sliding_window_view(all_tokens, 4) == window, axis=1))
        assert len(hits) > 0
        # EOD positions carry no loss (eod_mask_loss)
        assert np.all(sample["loss_mask"].numpy()[tokens == tokenizer.eod] == 0)


@pytest.fixture
def gloo_world():
    """A default process group of one (gloo): Megatron-Core's BlendedDataset asks for the rank."""
    import socket

    import torch.distributed as dist

    if not dist.is_initialized():  # other test modules may already have one; reuse it then
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    return dist


def test_shard_datasets_blend_with_megatron(shared_data, preprocess_main, tmp_path, gloo_world):
    from megatron.core.datasets.blended_dataset import BlendedDataset
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig

    out = tmp_path / "out"
    assert preprocess_main(["--source", "mimic-iii", "--input", str(shared_data / "mimic-iii-demo-1.4"),
                            "--output-dir", str(out), "--num-shards", "3"]) == 0
    manifest = read_manifest(out)
    shards = manifest["shard_datasets"]["train"]
    assert len(shards) == 3
    tokenizer = load_tokenizer(out / "tokenizer")
    config = GPTDatasetConfig(
        random_seed=1, sequence_length=32, tokenizer=tokenizer, reset_position_ids=True,
        reset_attention_mask=True, eod_mask_loss=True, path_to_cache=str(tmp_path / "cache"),
        blend_per_split=[([str(out / name) for name in shards], [1.0, 1.0, 1.0]), None, None],
        mid_level_dataset_surplus=0.005,
    )
    train, _, _ = BlendedMegatronDatasetBuilder(GPTDataset, [30, 0, 0], lambda: True, config).build()
    assert isinstance(train, BlendedDataset) and len(train) == 30
    assert {int(i) for i in train.dataset_index} == {0, 1, 2}  # every shard contributes
    assert all(train[i]["tokens"].shape == (32,) for i in range(30))
