"""Which optional backends this process has: Transformer Engine, apex, CUDA.

Probing imports nothing heavy at module import time; results are cached per process.
"""

from __future__ import annotations

import functools
import importlib.util

import torch


@functools.cache
def have_transformer_engine() -> bool:
    """True when `transformer_engine.pytorch` imports (it needs CUDA libraries to do so)."""
    if importlib.util.find_spec("transformer_engine") is None:
        return False
    try:
        import transformer_engine.pytorch  # noqa: F401
    except Exception:  # TE raises OSError/RuntimeError/ImportError when its CUDA libraries are missing
        return False
    return True


@functools.cache
def have_apex() -> bool:
    """True for NVIDIA apex (never the unrelated PyPI package of the same name)."""
    if importlib.util.find_spec("apex") is None:
        return False
    try:
        import apex.normalization  # noqa: F401  (only NVIDIA apex has this)
    except Exception:
        return False
    return True


def have_cuda() -> bool:
    return torch.cuda.is_available()
