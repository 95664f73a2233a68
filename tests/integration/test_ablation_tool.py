"""tools/ablate_dense_prefix.py end to end on CPU: the tiny model with D=0 and D=2 trained side by side
on patients preprocessed by the real tool, and the table, JSON and plot it writes."""

from __future__ import annotations

import json
import math

import pytest

from sparseehr_mcore.ablation.cli import main
from sparseehr_mcore.config import ModelConfig
from sparseehr_mcore.config.train import DataConfig
from sparseehr_mcore.model.accounting import count_parameters
from sparseehr_mcore.training.inputs import tokenizer_vocab_size

STEPS, UNTIMED = 6, 2


def test_tiny_ablation_writes_table_json_and_plot(tmp_path, synthetic_preprocessed, capsys):
    out = tmp_path / "ablation"
    status = main([
        "--data", str(synthetic_preprocessed), "--scale", "tiny", "--dense-prefix", "0,2", "--steps", str(STEPS),
        "--untimed-steps", str(UNTIMED), "--micro-batch-size", "2", "--global-batch-size", "4", "--eval-iters", "1",
        "--seq-length", "32", "--output-dir", str(out),
    ])  # fmt: skip
    assert status == 0
    printed = capsys.readouterr().out
    assert "round    4/4" in printed and "warm-up step 2/2 (memory measured)" in printed

    result = json.loads((out / "ablation.json").read_text())
    vocab = tokenizer_vocab_size(DataConfig(preprocessed_dirs=[str(synthetic_preprocessed)]))
    rows = {row["dense_prefix_layers"]: row for row in result["variants"]}
    assert list(rows) == [0, 2] and result["baseline"] == 0
    for d, row in rows.items():
        counts = count_parameters(ModelConfig.from_preset("tiny", vocab_size=vocab, seq_length=32, dense_prefix_layers=d))
        assert (row["total_params"], row["active_params"]) == (counts.total, counts.active)
        assert row["built_params"] == counts.total  # the model actually trained has the accounted size
        assert len(row["train_losses"]) == STEPS and len(row["step_times_s"]) == STEPS - UNTIMED
        assert all(t > 0 for t in row["step_times_s"]) and row["step_time_ratio"]["rounds"] == STEPS - UNTIMED
        assert math.isfinite(row["valid_ppl"]) and 1 < row["valid_ppl"] < vocab * 2
        assert 0 < row["memory"]["resident_bytes"] < row["memory"]["peak_bytes"]
        # The tiny model's layers 3-4 are MoE in both variants, layers 1-2 only with D=0.
        assert sorted(row["expert_shares"]) == (["1", "2", "3", "4"] if d == 0 else ["3", "4"])
        for shares in row["expert_shares"].values():
            assert math.isclose(sum(shares), 1.0, rel_tol=1e-9) and len(shares) == 4
        assert 0 <= row["expert_util_std"] <= 0.5
    assert rows[2]["active_params"] < rows[0]["active_params"] and rows[2]["total_params"] < rows[0]["total_params"]
    assert rows[0]["step_time_ratio"]["median"] == 1.0 and rows[0]["active_ratio"] == 1.0
    assert rows[2]["active_ratio"] < 1.0

    table = (out / "ablation.md").read_text()
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| D | Total params | Active/token | Val PPL | Time/step | Peak mem. | Expert util. std |")
    ours = [line.split(" | ") for line in lines[1:3]]
    assert [cells[0] for cells in ours] == ["| 0", "| 2"]
    assert ours[0][-1] == "1.000 |" and "resident tensors" in table and "profiler" in table
    assert (out / "ablation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert table in printed  # the table is also shown on the terminal


def test_what_cannot_run_is_refused_before_any_training(tmp_path, synthetic_preprocessed, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--data", str(synthetic_preprocessed), "--scale", "tiny", "--dense-prefix", "0,8", "--output-dir", str(tmp_path)])
    assert stopped.value.code == 2
    assert "exceed the 4 layers" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:
        main(["--data", str(tmp_path / "absent"), "--scale", "tiny", "--output-dir", str(tmp_path)])
    assert stopped.value.code == 2 and "does not exist" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written


def test_an_output_folder_it_must_not_write_is_refused_before_any_training(tmp_path, synthetic_preprocessed, capsys):
    (tmp_path / "notes.txt").write_text("not the tool's")
    base = ["--data", str(synthetic_preprocessed), "--scale", "tiny", "--dense-prefix", "0,2"]
    with pytest.raises(SystemExit) as stopped:
        main([*base, "--output-dir", str(tmp_path)])
    error = capsys.readouterr().err
    assert stopped.value.code == 2 and "notes.txt" in error and "--overwrite" in error
    with pytest.raises(SystemExit) as stopped:
        main([*base, "--output-dir", str(tmp_path / "notes.txt" / "out")])
    assert stopped.value.code == 2 and "Traceback" not in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # nothing written
