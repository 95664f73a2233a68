"""TP=2, EP=2 and PP=2 over two gloo processes give the loss of one process on the same weights."""

from __future__ import annotations

import pytest
from launch import read_rank_results, run_worker

from sparseehr_mcore.config import ModelConfig
from sparseehr_mcore.model.accounting import count_parameters

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("parity")
    done = run_worker("parallel_worker.py", ["--mode", "reference", "--weights", str(root / "weights"), "--out", str(root / "ref")])
    assert done.returncode == 0, done.stderr[-4000:]
    (result,) = read_rank_results(root / "ref")
    return root, result


def test_reference_step_is_sane(reference):
    _, result = reference
    assert result["grads_finite"]
    assert 4.0 < result["loss"] < 7.0  # ~ln(256) for an untrained model over a 256-token vocabulary
    assert result["built_parameters"] == count_parameters(ModelConfig.from_preset("tiny")).total


@pytest.mark.parametrize("layout", [["--tp", "2"], ["--ep", "2"], ["--pp", "2"], ["--ep", "2", "--dispatcher", "allgather"]])
def test_two_process_layout_matches_one_process(reference, layout):
    root, expected = reference
    out = root / "-".join(x.strip("-") for x in layout)
    done = run_worker(
        "parallel_worker.py",
        ["--mode", "check", "--weights", str(root / "weights"), "--out", str(out), *layout],
        nproc=2,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    results = read_rank_results(out)
    assert len(results) == 2
    losses = [r["loss"] for r in results if r["loss"] is not None]
    assert losses, "no rank reported a loss"
    for loss in losses:
        assert loss == pytest.approx(expected["loss"], rel=1e-6, abs=1e-6)
    assert all(r["grads_finite"] for r in results)
    # The sharded model holds exactly the parameters the accounting predicts.
    assert {r["built_parameters"] for r in results} == {expected["built_parameters"]}
