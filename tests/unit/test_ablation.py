"""The dense-prefix ablation's parts that need no training: config checks, model resolution, ratio
statistics, memory accounting, and the table and plot from a results dict."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import yaml

from sparseehr_mcore.ablation.cli import build_parser, config_from_args
from sparseehr_mcore.ablation.config import AblationConfig, base_model, variant_models
from sparseehr_mcore.ablation.memory import StepPeak, resident_bytes
from sparseehr_mcore.ablation.report import format_bytes, format_count, markdown_table, table_rows, write_report
from sparseehr_mcore.ablation.timing import per_round_ratio
from sparseehr_mcore.config import ConfigError, ModelConfig
from sparseehr_mcore.model.accounting import count_parameters


def test_flags_become_a_config_with_the_small_preset_by_default():
    args = build_parser().parse_args(["--data", "d", "--dense-prefix", "0,2", "--steps", "9"])
    config = config_from_args(args)
    assert (config.scale, config.model_file, config.dense_prefixes, config.steps) == ("small", None, (0, 2), 9)
    args = build_parser().parse_args(["--data", "d", "--model-config", "m.yaml"])
    assert (config_from_args(args).scale, config_from_args(args).model_file) == (None, "m.yaml")


def test_help_explains_every_field():
    text = build_parser().format_help()
    for flag in ("--scale", "--model-config", "--dense-prefix", "--steps", "--untimed-steps", "--data", "--output-dir",
                 "--seq-length", "--micro-batch-size", "--global-batch-size", "--lr", "--warmup-steps", "--eval-iters",
                 "--util-steps", "--precision", "--seed", "--log-interval"):  # fmt: skip
        assert flag in text
    assert set(AblationConfig.HELP) == {spec.name for spec in dataclasses.fields(AblationConfig)}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dense_prefixes": ()}, "at least one D"),
        ({"dense_prefixes": (0, 2, 2)}, "repeat"),
        ({"dense_prefixes": (-1,)}, ">= 0"),
        ({"steps": 3, "untimed_steps": 2}, "at least 2"),
        ({"untimed_steps": 0}, "untimed_steps must be >= 1"),
        ({"scale": None}, "exactly one of scale"),
        ({"model_file": "m.yaml"}, "exactly one of scale"),
        ({"scale": "huge"}, "scale must be one of"),
    ],
)
def test_config_refuses_what_cannot_work(changes, message):
    with pytest.raises(ConfigError, match=message):
        AblationConfig(data_dir="d", **changes)


def test_baseline_is_the_all_moe_model_where_present():
    assert AblationConfig(data_dir="d", dense_prefixes=(4, 0, 2)).baseline == 0
    assert AblationConfig(data_dir="d", dense_prefixes=(4, 2)).baseline == 4


def test_variants_share_the_architecture_and_differ_in_d_only():
    config = AblationConfig(data_dir="d", scale="tiny", dense_prefixes=(0, 2, 4), seq_length=32)
    base = base_model(config, vocab_size=90)
    assert (base.vocab_size, base.seq_length) == (90, 32)
    variants = variant_models(config, base)
    assert list(variants) == [0, 2, 4]
    for d, model in variants.items():
        assert model.replace(dense_prefix_layers=base.dense_prefix_layers) == base and model.dense_prefix_layers == d
    assert count_parameters(variants[2]).active < count_parameters(variants[0]).active


def test_a_d_deeper_than_the_model_is_refused_with_what_to_do():
    config = AblationConfig(data_dir="d", scale="tiny", dense_prefixes=(0, 8))
    with pytest.raises(ConfigError, match=r"\[8\] exceed the 4 layers.*num_layers: 8"):
        variant_models(config, base_model(config, vocab_size=90))


def test_model_files_take_the_tokenizer_vocabulary(tmp_path):
    preset_file = tmp_path / "preset.yaml"
    preset_file.write_text(yaml.safe_dump({"preset": "tiny", "num_layers": 8}))
    model = base_model(AblationConfig(data_dir="d", scale=None, model_file=str(preset_file)), vocab_size=90)
    assert (model.num_layers, model.vocab_size) == (8, 90)
    run_file = tmp_path / "run.yaml"
    run_file.write_text(yaml.safe_dump({"model": {"preset": "tiny", "vocab_size": "tokenizer"}, "train": {}}))
    assert base_model(AblationConfig(data_dir="d", scale=None, model_file=str(run_file)), vocab_size=90).vocab_size == 90
    full_file = tmp_path / "full.yaml"
    full_file.write_text(yaml.safe_dump(ModelConfig.from_preset("tiny", vocab_size=77).to_dict()))
    with pytest.raises(ConfigError, match="vocab_size is 77 but the tokenizer"):
        base_model(AblationConfig(data_dir="d", scale=None, model_file=str(full_file)), vocab_size=90)


def test_ratio_is_the_median_of_per_round_ratios():
    # Round 3 is slow for both (machine noise): the per-round ratio ignores it, a ratio of medians would not.
    summary = per_round_ratio([1.0, 1.0, 4.0, 1.0, 1.0], [2.0, 2.0, 8.0, 2.0, 2.5])
    assert summary.median == 0.5 and summary.rounds == 5
    assert summary.q1 == 0.5 and summary.q3 == 0.5
    assert per_round_ratio([3.0], [2.0]).as_dict() == {"median": 1.5, "q1": 1.5, "q3": 1.5, "rounds": 1}
    with pytest.raises(ValueError):
        per_round_ratio([1.0], [1.0, 2.0])


def test_resident_bytes_count_each_storage_once():
    model = torch.nn.Linear(100, 50, bias=False)  # 5000 fp32 weights
    optimizer = torch.optim.Adam(model.parameters())
    assert resident_bytes(model, optimizer) == 5000 * 4
    model(torch.randn(3, 100)).sum().backward()
    optimizer.step()
    # weight + grad + exp_avg + exp_avg_sq, plus Adam's 1-element step counter
    assert resident_bytes(model, optimizer) == 4 * 5000 * 4 + 4
    model.weight.main_grad = model.weight.grad.view(-1)  # a view of a counted storage adds nothing
    assert resident_bytes(model, optimizer) == 4 * 5000 * 4 + 4


def test_cpu_step_peak_sees_a_temporary_allocation():
    peak = StepPeak(torch.device("cpu"))
    kept = []
    with peak.measure():
        temporary = torch.ones(1_000_000)  # 4 MB, freed within the step
        kept.append(torch.ones(250_000))  # 1 MB, still alive afterwards
        del temporary
    assert 5_000_000 <= peak.bytes < 5_000_000 + 200_000
    assert "profiler" in peak.method


def _result(**overrides) -> dict:
    """A results dict of the shape run_ablation returns, for two variants."""
    def row(d, total, active, seconds, ratio, peak, util):
        return {"dense_prefix_layers": d, "total_params": total, "active_params": active, "built_params": total,
                "active_ratio": active / 1_000_000, "step_time_s": seconds, "step_times_s": [seconds] * 3,
                "step_time_ratio": {"median": ratio, "q1": ratio - 0.01, "q3": ratio + 0.02, "rounds": 3},
                "memory": {"resident_bytes": peak // 2, "step_bytes": peak // 2, "peak_bytes": peak, "method": "m"},
                "peak_mem_ratio": peak / 3 * 2**-30, "valid_loss": 3.0, "valid_ppl": 20.09, "expert_util_std": util,
                "expert_util_std_per_layer": {}, "expert_shares": {}, "train_losses": [4.0, 3.5]}  # fmt: skip

    result = {
        "config": AblationConfig(data_dir="data/x", scale="tiny", dense_prefixes=(0, 4)).to_dict(),
        "model": ModelConfig.from_preset("tiny").to_dict(),
        "environment": {"device": "CPU (test)", "torch": "t", "megatron_core": "m", "precision": "fp32",
                        "transformer_impl": "local", "date": "2026-01-01"},  # fmt: skip
        "baseline": 0,
        "utilisation_steps": 20,
        "memory_method": "cpu: test",
        "variants": [row(0, 1_000_000, 1_000_000, 1.5, 1.0, 3 * 2**30, 0.15), row(4, 900_000, 950_000, 0.0123, 0.8, 2**29, None)],
    }
    result.update(overrides)
    return result


def test_table_has_the_paper_columns_and_one_row_per_d():
    text = markdown_table(_result())
    header = next(line for line in text.splitlines() if line.startswith("| D |"))
    for column in ("Total params", "Active/token", "Val PPL", "Time/step", "Peak mem.", "Expert util. std",
                   "Active vs D=0", "Time/step vs D=0 (IQR)", "Peak mem. vs D=0"):  # fmt: skip
        assert column in header
    assert table_rows(_result())[0][:7] == ["0", "1.0M", "1.0M", "20.09", "1.500 s", "3.0 GiB", "0.150"]
    assert table_rows(_result())[1][4:9] == ["12.3 ms", "512.0 MiB", "n/a (no MoE layer)", "0.950", "0.800 (0.790-0.820)"]
    assert "cpu: test" in text and "CPU (test)" in text and "over the last 20 training steps" in text


def test_formats():
    assert [format_count(n) for n in (942_000_000, 1_234_000_000, 61_300, 12)] == ["942.0M", "1.23B", "61.3K", "12"]
    assert format_bytes(None) == "n/m" and format_bytes(3 * 2**20) == "3.0 MiB"


def test_report_files_come_from_the_results_alone(tmp_path):
    paths = write_report(_result(), tmp_path / "out")
    assert json.loads(paths["json"].read_text())["variants"][1]["dense_prefix_layers"] == 4
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths["md"].read_text() == markdown_table(_result())
