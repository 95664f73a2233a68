"""The README's main command, reduced in size: cohorts, preprocessing, torchrun pretraining, export,
zero-shot evaluation on the ICD-9 hospital and the summary."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_reduced_quickstart_ends_with_the_summary(tmp_path):
    out = tmp_path / "quickstart"
    env = {k: v for k, v in os.environ.items() if k not in {"RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"}}
    done = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "quickstart.sh"), "--patients", "300", "--hospital-patients", "30",
         "--steps", "12", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=1200,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    for method in ("population frequency", "history", "model (protocol A)", "model (protocol B)"):
        assert method in done.stdout
    assert f"report:  {out}/evaluation/report.md" in done.stdout and f"export:  {out}/hf" in done.stdout
    report = json.loads((out / "evaluation" / "report.json").read_text())
    assert report["data"]["source"] == "events" and report["cohort"]["visits_scored"] > 0
    # The hospital was coded in ICD-9 and reached the claims vocabulary through the forward GEM.
    coverage = report["data"]["harmonisation_coverage"]["ICD9CM"]["events"]
    assert coverage.get("exact", 0) + coverage.get("approximate", 0) > 0
    assert (out / "hf" / "config.json").is_file() and (out / "evaluation" / "recall_at_k.png").is_file()
    # Re-running replaces the outputs instead of mixing them.
    assert not (out / "claims-data" / ".work").exists()
