"""benchmarks/train_step.py on a GPU: both contenders and their batches on the device, bf16, and the
ratio and FLOP/s lines printed (issue 11, item 8). Skipped without CUDA."""

from __future__ import annotations

import pytest
import torch
from script_loading import load_script

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def load_benchmark():
    return load_script("benchmarks/train_step.py")


def test_build_model_puts_every_parameter_on_the_gpu(single_process_world):
    """Megatron-Core makes the router, the shared-expert gate and local norms on the CPU."""
    from sparseehr_mcore.config import ModelConfig, ParallelConfig
    from sparseehr_mcore.model.builder import build_model

    for impl in ("local", "auto"):
        model = build_model(ModelConfig.from_preset("tiny", shared_expert_gate=True, transformer_impl=impl), ParallelConfig())
        assert [name for name, param in model.named_parameters() if not param.is_cuda] == []


def test_contenders_live_on_the_gpu_in_bf16(single_process_world, fresh_aux_loss_scale):
    from sparseehr_mcore.config import ModelConfig

    benchmark = load_benchmark()
    model = ModelConfig.from_preset("tiny")
    batch = benchmark.synthetic_batch(model, 2, model.seq_length, torch.device("cuda"))
    assert all(tensor.is_cuda for tensor in batch.values())
    hf = benchmark.HuggingFaceStep(model, batch, precision="bf16")
    assert all(param.is_cuda for param in hf.model.parameters())
    hf()
    megatron = benchmark.MegatronStep(model, batch, precision="bf16")
    params = list(megatron.stack.model.parameters())
    assert all(param.is_cuda for param in params) and {param.dtype for param in params} == {torch.bfloat16}
    megatron()
    torch.cuda.synchronize()


def test_benchmark_runs_on_cuda(single_process_world, fresh_aux_loss_scale, capsys):
    benchmark = load_benchmark()
    assert benchmark.main(["--preset", "tiny", "--steps", "3", "--warmup", "1", "--skip-paper-shape"]) == 0
    out = capsys.readouterr().out
    assert "device cuda" in out and "precision bf16" in out
    assert "ratio Megatron-Core / plain PyTorch =" in out and "bf16 matmul peak" in out
