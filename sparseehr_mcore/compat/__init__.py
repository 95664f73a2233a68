"""What Megatron-Core needs to run here: CPU shims (only without CUDA) and backend-absence fixes.

Call `apply_compat()` once per process before building a model; it is idempotent. To see what
Megatron-Core needs on a machine, leave shims out with `SPARSEEHR_COMPAT_SKIP=name1,name2` (names of
`CPU_SHIMS`, `te_general_gemm` and `checkpoint_results_queue`); the necessity tests do exactly that.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from sparseehr_mcore.compat.backends import have_apex, have_cuda, have_transformer_engine
from sparseehr_mcore.compat.cpu_shims import CPU_SHIMS, Shim
from sparseehr_mcore.compat.megatron_fixes import (
    define_te_general_gemm_without_te,
    keep_checkpoint_write_results_in_process,
)
from sparseehr_mcore.compat.quiet_import import import_megatron_quietly

import_megatron_quietly()  # before any other module of ours imports Megatron-Core

_applied: set[str] = set()  # process-wide by nature: the patches themselves are process-wide


def apply_compat(*, skip: Iterable[str] | None = None) -> list[str]:
    """Apply every shim this process needs, except those named in `skip`.

    Args:
        skip: shim names to leave out; default: `SPARSEEHR_COMPAT_SKIP` from the environment.

    Returns:
        The names of the shims applied by this call.
    """
    if skip is None:
        skip = filter(None, os.environ.get("SPARSEEHR_COMPAT_SKIP", "").split(","))
    skip = set(skip)
    unknown = skip - {shim.name for shim in CPU_SHIMS} - {"te_general_gemm", "checkpoint_results_queue"}
    if unknown:
        raise ValueError(f"unknown compat shim(s) {sorted(unknown)}; known: {[s.name for s in CPU_SHIMS]}")
    import_megatron_quietly()
    applied = []
    if "te_general_gemm" not in skip and "te_general_gemm" not in _applied and not have_transformer_engine():
        define_te_general_gemm_without_te()
        applied.append("te_general_gemm")
    if "checkpoint_results_queue" not in skip and "checkpoint_results_queue" not in _applied:
        keep_checkpoint_write_results_in_process()
        applied.append("checkpoint_results_queue")
    if not have_cuda():
        for shim in CPU_SHIMS:
            if shim.name not in skip and shim.name not in _applied:
                shim.apply()
                applied.append(shim.name)
    _applied.update(applied)
    return applied


__all__ = ["CPU_SHIMS", "Shim", "apply_compat", "have_apex", "have_cuda", "have_transformer_engine"]
