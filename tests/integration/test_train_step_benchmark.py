"""benchmarks/train_step.py runs where the tests run (CPU here; tests/gpu covers CUDA) and prints the
ratio lines and FLOP/s against the matmul peak measured in the same rounds."""

from __future__ import annotations

import re

import pytest
from script_loading import load_script


def load_benchmark():
    return load_script("benchmarks/train_step.py")


@pytest.mark.slow
def test_benchmark_prints_ratios_and_flop_utilisation(single_process_world, fresh_aux_loss_scale, capsys):
    import torch

    benchmark = load_benchmark()
    assert benchmark.main(["--preset", "tiny", "--steps", "3", "--warmup", "1", "--skip-paper-shape"]) == 0
    out = capsys.readouterr().out
    device = "cuda" if torch.cuda.is_available() else "cpu"
    assert f"device {device}" in out and f"precision {'bf16' if device == 'cuda' else 'fp32'}" in out
    ratio = re.search(r"ratio Megatron-Core / plain PyTorch = ([0-9.]+) \(IQR ([0-9.]+)-([0-9.]+), 3 rounds\)", out)
    assert ratio and float(ratio[2]) <= float(ratio[1]) <= float(ratio[3]), out
    share = re.search(r"2\. Megatron-Core: achieved ([0-9.,]+) GFLOP/s of a measured ([0-9.,]+) GFLOP/s .*: ([0-9.]+)%", out)
    assert share and float(share[3]) > 0, out
    if device == "cpu":  # the local spec: the unfused-attention contender is measured beside it
        assert "ratio SDPA / unfused attention (whole step)" in out


def test_device_and_precision_defaults():
    import torch

    benchmark = load_benchmark()
    assert benchmark.parse_args([]).precision == "auto"
    assert benchmark.resolve_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert benchmark.resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert benchmark.resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert benchmark.resolve_precision("fp32", torch.device("cuda")) == "fp32"
