"""Parameter and FLOP accounting agree with models actually built through Megatron-Core."""

from __future__ import annotations

import json
from pathlib import Path
import subprocess
import sys

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from sparseehr_mcore.config import ModelConfig
from sparseehr_mcore.model.accounting import count_parameters, flops_per_token
from sparseehr_mcore.model.introspect import count_built_parameters
from sparseehr_mcore.model.stats_cli import main as model_stats_main

REPO_ROOT = Path(__file__).resolve().parents[2]

VARIANTS = [
    {},
    {"dense_prefix_layers": 0},
    {"dense_prefix_layers": 4},
    {"router_topk": 2},
    {"tie_embeddings": False, "qkv_bias": True},
    {"normalization": "LayerNorm"},
    {"shared_expert_gate": True},
    {"shared_expert_ffn_hidden_size": 0},
    {"kv_channels": 24, "num_query_groups": 1},
    {"vocab_size": 250},  # padded to 256
]


@pytest.mark.parametrize("overrides", VARIANTS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "tiny")
def test_counts_equal_the_built_model(build_tiny, overrides):
    config, model = build_tiny(**overrides)
    counts = count_parameters(config)
    assert sum(p.numel() for p in model.parameters()) == counts.total
    assert count_built_parameters(model) == counts.total
    expert_params = sum(p.numel() for n, p in model.named_parameters() if ".local_experts." in n)
    per_expert = expert_params // max(1, config.num_moe_layers * config.num_experts)
    inactive = config.num_moe_layers * (config.num_experts - config.router_topk) * per_expert
    assert counts.active == counts.total - inactive


@pytest.mark.parametrize("overrides", VARIANTS[:5], ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "tiny")
def test_forward_flops_equal_what_torch_counts(build_tiny, overrides):
    config, model = build_tiny(**overrides)
    batch, seq = 2, config.seq_length
    tokens = torch.randint(0, config.vocab_size, (batch, seq))
    # torch's counter has formulas for SDPA's CUDA kernels but not for its CPU flash kernel, which the
    # local spec's SDPA core attention runs here: count that one with the same formula.
    cpu_flash = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: lambda q, k, v, *_, **__: sdpa_flop_count(q, k, v)}
    with FlopCounterMode(display=False, custom_mapping=cpu_flash) as counter, torch.no_grad():
        model(tokens, torch.arange(seq).expand(batch, -1), None)
    assert counter.get_total_flops() == flops_per_token(config)["forward"] * batch * seq


def test_paper_preset_golden_counts():
    # Regenerate with: python tools/model_stats.py --preset paper [--dense-prefix D] --json
    expected = {0: (948_635_648, 495_650_816), 4: (810_190_848, 470_452_224)}
    for dense_prefix, (total, active) in expected.items():
        counts = count_parameters(ModelConfig.from_preset("paper", dense_prefix_layers=dense_prefix))
        assert (counts.total, counts.active) == (total, active)
    # Within 1% of the paper's 942M/807M totals and its 470M active at D=4.
    assert abs(expected[0][0] / 942e6 - 1) < 0.01 and abs(expected[4][0] / 807e6 - 1) < 0.01
    assert abs(expected[4][1] / 470e6 - 1) < 0.01


def test_model_stats_cli_json_and_table(capsys):
    assert model_stats_main(["--preset", "paper", "--dense-prefix", "0", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["parameters"]["total"] == 948_635_648
    assert stats["paper"] == {"total": 942_000_000, "active": 530_000_000}
    assert model_stats_main(["--preset", "paper"]) == 0
    table = capsys.readouterr().out
    assert "810.2M" in table and "807M" in table and "+0.4%" in table


def test_model_stats_cli_rejects_bad_input(capsys, tmp_path):
    assert model_stats_main(["--preset", "tiny", "--dense-prefix", "7"]) == 2
    assert "dense_prefix_layers (D=7) must be between 0 and num_layers (4)" in capsys.readouterr().err
    (tmp_path / "m.yaml").write_text("preset: tiny\nlayers: 3\n")
    assert model_stats_main(["--config", str(tmp_path / "m.yaml")]) == 2
    assert "unknown ModelConfig key(s) 'layers'" in capsys.readouterr().err


def test_model_stats_tool_runs_as_a_script():
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "model_stats.py"), "--preset", "small", "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(done.stdout)["parameters"]["total"] == count_parameters(ModelConfig.from_preset("small")).total
    assert done.stderr == ""
