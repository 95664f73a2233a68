"""Every CPU shim is still needed by this Megatron-Core, and no other one is.

Each shim is left out in turn (SPARSEEHR_COMPAT_SKIP) from the smallest scenario that needs it
(`Shim.scenario`); the run must then fail with the error the shim documents. With every shim
applied the same scenarios pass (test_parallel_parity.py, test_pretrain.py), so Megatron-Core needs
nothing more. If an upgrade fixes one of these places upstream, its test here fails: delete the shim.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from launch import run_in_own_group, run_worker

from sparseehr_mcore.compat import CPU_SHIMS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(torch.cuda.is_available(), reason="CPU shims apply only where CUDA is absent"),
]
REPO_ROOT = Path(__file__).resolve().parents[2]


def model_step(tmp_path, skip: str):
    return run_worker(
        "parallel_worker.py",
        ["--mode", "reference", "--weights", str(tmp_path / "w"), "--out", str(tmp_path / "out")],
        env={"SPARSEEHR_COMPAT_SKIP": skip},
    )


def expert_parallel(tmp_path, skip: str):
    assert model_step(tmp_path, "").returncode == 0
    return run_worker(
        "parallel_worker.py",
        ["--mode", "check", "--weights", str(tmp_path / "w"), "--out", str(tmp_path / "ep2"), "--ep", "2"],
        nproc=2,
        env={"SPARSEEHR_COMPAT_SKIP": skip},
    )


def training_step(tmp_path, skip: str, data_dir: Path, *extra: str):
    command = [
        sys.executable, str(REPO_ROOT / "examples" / "pretrain_sparseehr.py"),
        "--model.preset", "tiny", "--model.vocab_size", "tokenizer", "--data.preprocessed_dirs", str(data_dir),
        "--data.num_workers", "0", "--train.train_iters", "2", "--train.warmup_iters", "0", "--train.eval_interval", "0",
        "--train.micro_batch_size", "2", "--train.global_batch_size", "2", "--train.lr", "1.0",  # clipping engages
        *extra,
    ]  # fmt: skip
    env = {**os.environ, "SPARSEEHR_COMPAT_SKIP": skip, "OMP_NUM_THREADS": "1"}
    return run_in_own_group(command, env=env, timeout=600)


@pytest.mark.parametrize("shim", CPU_SHIMS, ids=lambda shim: shim.name)
def test_scenario_fails_without_shim(tmp_path, shim, synthetic_preprocessed):
    if shim.scenario == "training_step":
        done = training_step(tmp_path, shim.name, synthetic_preprocessed)
    elif shim.scenario == "bf16_training_step":
        done = training_step(tmp_path, shim.name, synthetic_preprocessed, "--train.precision", "bf16")
    else:
        done = {"model_step": model_step, "expert_parallel": expert_parallel}[shim.scenario](tmp_path, shim.name)
    assert done.returncode != 0, f"{shim.name} is no longer needed by Megatron-Core: remove it"
    assert shim.failure_without in done.stderr, done.stderr[-3000:]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_step_passes_with_every_shim(tmp_path, synthetic_preprocessed, precision):
    done = training_step(tmp_path, "", synthetic_preprocessed, "--train.precision", precision)
    assert done.returncode == 0, done.stderr[-3000:]


def test_router_fails_without_te_general_gemm_fix(tmp_path):
    done = model_step(tmp_path, "te_general_gemm")
    assert done.returncode != 0, "megatron-core defines te_general_gemm without TE now: remove the fix"
    assert "name 'te_general_gemm' is not defined" in done.stderr, done.stderr[-3000:]
