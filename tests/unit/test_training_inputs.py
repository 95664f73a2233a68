"""Training inputs are checked before any compute: datasets present and non-empty, one tokenizer."""

from __future__ import annotations

import numpy as np
import pytest
from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder, get_bin_path, get_idx_path

from sparseehr_mcore.config import ConfigError
from sparseehr_mcore.config.train import DataConfig
from sparseehr_mcore.training.inputs import resolve_data_sources


def test_missing_and_empty_datasets_are_named(tmp_path):
    with pytest.raises(ConfigError, match="no training data"):
        resolve_data_sources(DataConfig())
    with pytest.raises(ConfigError, match="preprocessed directory .*absent does not exist"):
        resolve_data_sources(DataConfig(preprocessed_dirs=[str(tmp_path / "absent")]))
    (tmp_path / "half").mkdir()
    with pytest.raises(ConfigError, match="no manifest.json"):
        resolve_data_sources(DataConfig(preprocessed_dirs=[str(tmp_path / "half")], tokenizer_dir=str(tmp_path)))


def test_empty_dataset_is_refused(tmp_path, synthetic_tokenizer_dir):
    prefix = str(tmp_path / "empty")
    IndexedDatasetBuilder(get_bin_path(prefix), dtype=np.int32).finalize(get_idx_path(prefix))
    with pytest.raises(ConfigError, match="holds no patients"):
        resolve_data_sources(DataConfig(train_prefixes=[prefix], tokenizer_dir=str(synthetic_tokenizer_dir)))
    with pytest.raises(ConfigError, match="not found"):
        resolve_data_sources(DataConfig(train_prefixes=[str(tmp_path / "nothing")], tokenizer_dir=str(synthetic_tokenizer_dir)))


@pytest.fixture
def synthetic_tokenizer_dir(tmp_path):
    from sparseehr_mcore.data.synthetic import write_synthetic_cohort
    from sparseehr_mcore.data.preprocess import run_preprocess
    from sparseehr_mcore.data.cli import build_parser, config_from_args

    cohort = write_synthetic_cohort(tmp_path / "cohort", patients=20)
    args = build_parser().parse_args(["--source", "events", "--input", str(cohort), "--output-dir", str(tmp_path / "out")])
    run_preprocess(config_from_args(args))
    return tmp_path / "out" / "tokenizer"


# ---------------------------------------------------------------------------------------------------
# Blend weights, sizing and the one-tokenizer check, on real outputs of the preprocessing pipeline.


def preprocess(root, name: str, *, patients: int, seed: int, args: tuple[str, ...] = ()):
    from sparseehr_mcore.data.cli import build_parser, config_from_args
    from sparseehr_mcore.data.preprocess import run_preprocess
    from sparseehr_mcore.data.synthetic import write_synthetic_cohort

    cohort = write_synthetic_cohort(root / f"{name}-cohort", patients=patients, seed=seed)
    argv = ["--source", "events", "--input", str(cohort), "--output-dir", str(root / name), *args]
    run_preprocess(config_from_args(build_parser().parse_args(argv)))
    return root / name


@pytest.fixture(scope="module")
def preprocessed(tmp_path_factory):
    """Directories a, b, c of one tokenizer (b and c reuse a's; c in two shards) and `other`, written
    with another tokenizer."""
    root = tmp_path_factory.mktemp("preprocessed")
    a = preprocess(root, "a", patients=60, seed=0)
    b = preprocess(root, "b", patients=60, seed=1, args=("--tokenizer-dir", str(a / "tokenizer")))
    c = preprocess(root, "c", patients=60, seed=2, args=("--tokenizer-dir", str(a / "tokenizer"), "--num-shards", "2"))
    other = preprocess(root, "other", patients=30, seed=3, args=("--tokenizer", "time-gaps"))
    return {"a": a, "b": b, "c": c, "other": other}


def patients(prefix) -> int:
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    return len(IndexedDataset(str(prefix)))


def test_given_weights_are_the_blend_weights_of_directories_and_prefixes(preprocessed):
    a, b, c = preprocessed["a"], preprocessed["b"], preprocessed["c"]
    data = DataConfig(
        preprocessed_dirs=[str(a), str(b)], weights=[0.7, 0.3],
        train_prefixes=[str(c / "train")], train_prefix_weights=[0.2],
        valid_prefixes=[str(c / "valid")], valid_prefix_weights=[0.1],
    )  # fmt: skip
    sources = resolve_data_sources(data)
    # In the units of `weights`, never a patient count beside them.
    assert sources.train == ([str(a / "train"), str(b / "train"), str(c / "train")], [0.7, 0.3, 0.2])
    # Validation weighs each directory as training does.
    assert sources.valid == ([str(a / "valid"), str(b / "valid"), str(c / "valid")], [0.7, 0.3, 0.1])


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"train_prefixes": ["{c}/train"]}, "train_prefix_weights is missing: with blend weights every source needs one"),
        ({"valid_prefixes": ["{c}/valid"]}, "valid_prefix_weights is missing"),
        ({"train_prefixes": ["{c}/train"], "train_prefix_weights": [1.0, 2.0]}, "train_prefix_weights has 2 entries for 1 train_prefixes"),
    ],
)
def test_weights_are_given_for_every_source_or_for_none(preprocessed, extra, message):
    extra = {key: [v.format(c=preprocessed["c"]) for v in value] if key.endswith("prefixes") else value
             for key, value in extra.items()}  # fmt: skip
    with pytest.raises(ConfigError, match=message):
        DataConfig(preprocessed_dirs=[str(preprocessed["a"])], weights=[1.0], **extra)


def test_without_weights_every_source_weighs_its_patients(preprocessed):
    a, b, c = preprocessed["a"], preprocessed["b"], preprocessed["c"]
    shard = c / "shards" / "00000-of-00002" / "train"
    sources = resolve_data_sources(
        DataConfig(preprocessed_dirs=[str(a), str(b)], train_prefixes=[str(shard)], valid_prefixes=[str(c / "valid")])
    )
    prefixes, weights = sources.train
    assert prefixes == [str(a / "train"), str(b / "train"), str(shard)]
    assert weights == [float(patients(prefix)) for prefix in prefixes]
    prefixes, weights = sources.valid
    assert prefixes == [str(a / "valid"), str(b / "valid"), str(c / "valid")]
    assert weights == [float(patients(prefix)) for prefix in prefixes]


def test_several_directories_without_weights_fill_the_whole_run(preprocessed, single_process_world):
    """The reported failure: 3 directories, fewer patients than the samples the run needs."""
    from sparseehr_mcore.training.data import build_patient_datasets, micro_batches

    sources = resolve_data_sources(DataConfig(preprocessed_dirs=[str(preprocessed[name]) for name in "abc"]))
    total = sum(patients(prefix) for prefix in sources.train[0])
    wanted = 320  # train_iters x global_batch_size
    assert total < wanted
    train, _ = build_patient_datasets(
        train=sources.train, valid=None, sequence_length=32, special=sources.special_ids,
        num_train_samples=wanted, num_valid_samples=0, seed=1,
    )  # fmt: skip
    assert len(train) >= wanted
    batches = micro_batches(train, start_sample=0, micro_batch_size=8, data_parallel_rank=0, data_parallel_size=1)
    assert sum(1 for _ in batches) == len(train) // 8 >= wanted // 8
    # A blend without weights (Megatron-Core concatenates one epoch of each) is refused before compute.
    with pytest.raises(ConfigError, match=f"the training blend holds {total} samples but the run draws {wanted}"):
        build_patient_datasets(
            train=(sources.train[0], None), valid=None, sequence_length=32, special=sources.special_ids,
            num_train_samples=wanted, num_valid_samples=0, seed=1,
        )  # fmt: skip


def test_every_input_is_checked_against_the_one_tokenizer(preprocessed, tmp_path):
    a, c, other = preprocessed["a"], preprocessed["c"], preprocessed["other"]
    tokenizer = str(a / "tokenizer")
    # The first directory is checked too when the tokenizer is given.
    with pytest.raises(ConfigError, match=f"{other}/train was tokenized with {other}/tokenizer, another vocabulary"):
        resolve_data_sources(DataConfig(preprocessed_dirs=[str(other), str(a)], tokenizer_dir=tokenizer))
    # Explicit prefixes are checked against the tokenizer of the directory that wrote them (shards too).
    other_shards = preprocess(tmp_path, "other-shards", patients=30, seed=3, args=("--tokenizer", "time-gaps", "--num-shards", "2"))
    with pytest.raises(ConfigError, match="shards/00001-of-00002/train was tokenized with .*other-shards/tokenizer"):
        resolve_data_sources(DataConfig(
            preprocessed_dirs=[str(a)], train_prefixes=[str(c / "shards" / "00000-of-00002" / "train")],
            valid_prefixes=[str(other_shards / "shards" / "00001-of-00002" / "train")],
        ))  # fmt: skip
    # A bare prefix (no manifest names it) must use no id outside the vocabulary.
    vocab_size = resolve_data_sources(DataConfig(preprocessed_dirs=[str(a)])).vocab_size
    for name, largest in (("inside", vocab_size - 1), ("outside", vocab_size)):
        builder = IndexedDatasetBuilder(get_bin_path(str(tmp_path / name)), dtype=np.int32)
        builder.add_document(np.array([4, 5, largest, 1], dtype=np.int32), [4])
        builder.finalize(get_idx_path(str(tmp_path / name)))
    resolve_data_sources(DataConfig(tokenizer_dir=tokenizer, train_prefixes=[str(tmp_path / "inside")]))
    with pytest.raises(ConfigError, match=f"holds token id {vocab_size}, outside the {vocab_size}-token vocabulary"):
        resolve_data_sources(DataConfig(tokenizer_dir=tokenizer, train_prefixes=[str(tmp_path / "inside"), str(tmp_path / "outside")]))
