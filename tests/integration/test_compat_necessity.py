"""Every CPU shim is still needed by this Megatron-Core, and no other one is.

Each shim is left out in turn (SPARSEEHR_COMPAT_SKIP) from the smallest scenario that needs it; the
run must then fail with the error the shim documents. With every shim applied, the same scenarios
pass (test_parallel_parity.py), so Megatron-Core needs nothing more. If an upgrade fixes one of these
places upstream, its test here fails: delete the shim.
"""

from __future__ import annotations

import pytest
import torch
from launch import run_worker

from sparseehr_mcore.compat import CPU_SHIMS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(torch.cuda.is_available(), reason="CPU shims apply only where CUDA is absent"),
]

SINGLE_PROCESS_SHIMS = [shim for shim in CPU_SHIMS if shim.name != "split_sizes_to_host"]


def reference_step(tmp_path, skip: str):
    return run_worker(
        "parallel_worker.py",
        ["--mode", "reference", "--weights", str(tmp_path / "w"), "--out", str(tmp_path / "out")],
        env={"SPARSEEHR_COMPAT_SKIP": skip},
    )


@pytest.mark.parametrize("shim", SINGLE_PROCESS_SHIMS, ids=lambda shim: shim.name)
def test_single_process_step_fails_without_shim(tmp_path, shim):
    done = reference_step(tmp_path, shim.name)
    assert done.returncode != 0, f"{shim.name} is no longer needed by Megatron-Core: remove it"
    assert shim.failure_without in done.stderr, done.stderr[-3000:]


def test_router_fails_without_te_general_gemm_fix(tmp_path):
    done = reference_step(tmp_path, "te_general_gemm")
    assert done.returncode != 0, "megatron-core defines te_general_gemm without TE now: remove the fix"
    assert "name 'te_general_gemm' is not defined" in done.stderr, done.stderr[-3000:]


def test_expert_parallel_fails_without_host_split_sizes(tmp_path):
    assert reference_step(tmp_path, "").returncode == 0
    done = run_worker(
        "parallel_worker.py",
        ["--mode", "check", "--weights", str(tmp_path / "w"), "--out", str(tmp_path / "ep2"), "--ep", "2"],
        nproc=2,
        env={"SPARSEEHR_COMPAT_SKIP": "split_sizes_to_host"},
    )
    assert done.returncode != 0, "split_sizes_to_host is no longer needed by Megatron-Core: remove it"
    assert "all_to_all_single" in done.stderr, done.stderr[-3000:]
