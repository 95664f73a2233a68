"""A checkpoint exports to the same Hugging Face files whatever TP/EP layout it was saved under."""

from __future__ import annotations

import pytest

from sparseehr_mcore.checkpointing.layout import CheckpointMetadata, read_metadata
from sparseehr_mcore.checkpointing.weights import save_weights
from sparseehr_mcore.config import ParallelConfig
from hf_export_helpers import folder_bytes, load_convert_main, perturb_norms
from launch import run_worker

convert = load_convert_main()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, single_process_world):
    """A TP=1 checkpoint of the tiny model and its export."""
    from sparseehr_mcore.config import ModelConfig
    from sparseehr_mcore.distributed import seed_everything
    from sparseehr_mcore.model.builder import build_model

    root = tmp_path_factory.mktemp("hf_layouts")
    config = ModelConfig.from_preset("tiny")
    seed_everything(1234)
    model = build_model(config, ParallelConfig())
    perturb_norms(model)
    save_weights(model, root / "tp1", metadata=CheckpointMetadata(model=config, parallel=ParallelConfig(), iteration=5, kind="weights"))
    assert convert(["--to", "hf", "--no-tokenizer", "--input", str(root / "tp1"), "--output", str(root / "hf_tp1")]) == 0
    return root


@pytest.mark.slow
@pytest.mark.parametrize("layout", [["--tp", "2"], ["--ep", "2"]], ids=["tp2", "ep2"])
def test_export_is_layout_independent(reference, layout, tmp_path):
    saved = tmp_path / "resharded"
    done = run_worker("hf_reshard_worker.py", ["--reference", str(reference / "tp1"), "--save", str(saved), *layout], nproc=2)
    assert done.returncode == 0, done.stderr[-4000:]
    saved_under = read_metadata(saved).parallel
    assert (saved_under.tp, saved_under.ep) == ((2, 1) if layout[0] == "--tp" else (1, 2))
    assert convert(["--to", "hf", "--no-tokenizer", "--input", str(saved), "--output", str(tmp_path / "hf")]) == 0
    expected, actual = folder_bytes(reference / "hf_tp1"), folder_bytes(tmp_path / "hf")
    assert sorted(expected) == sorted(actual)
    assert [name for name in expected if expected[name] != actual[name]] == []
