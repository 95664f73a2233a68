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
