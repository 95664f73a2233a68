"""Shared pytest fixtures: the real public data beside the project, and CPU-only process setup; and
the end-of-session check that no process started by a test outlives the suite."""

from __future__ import annotations

from pathlib import Path

import pytest

# Fails the session when a process started by a test outlives the suite (see the module).
from leftover_processes import pytest_sessionfinish, pytest_sessionstart  # noqa: F401

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` (real MIMIC/SynPUF/GEM files, read in place); skips the test where absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real public data not found at {SHARED_DATA} (see ../shared/data/README.md)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def single_process_world():
    """A one-process gloo world with Megatron-Core's parallel state (TP=PP=EP=1), for in-process tests."""
    from sparseehr_mcore.config import ParallelConfig
    from sparseehr_mcore.distributed import initialize_distributed

    return initialize_distributed(ParallelConfig(), seed=1234)


@pytest.fixture
def build_tiny(single_process_world):
    """Build a tiny model (optionally with ModelConfig overrides) from a fixed seed on one process."""
    from sparseehr_mcore.config import ModelConfig, ParallelConfig
    from sparseehr_mcore.distributed import seed_everything
    from sparseehr_mcore.model.builder import build_model

    def build(seed: int = 1234, **overrides):
        config = ModelConfig.from_preset("tiny", **overrides)
        seed_everything(seed)
        return config, build_model(config, ParallelConfig())

    return build


@pytest.fixture
def fresh_aux_loss_scale():
    """Megatron-Core 0.16 keeps the MoE aux-loss backward scale in a class attribute. A plain backward
    outside the pipeline schedule (another test's, same process) leaves a 0-d tensor there, into which
    the schedule's later in-place copy of its [1]-shaped scale fails: tests that step through the
    schedule start, and leave, it as a fresh process has it (None)."""
    from megatron.core.transformer.moe.moe_utils import MoEAuxLossAutoScaler

    MoEAuxLossAutoScaler.main_loss_backward_scale = None
    yield
    MoEAuxLossAutoScaler.main_loss_backward_scale = None
