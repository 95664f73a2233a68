"""Preprocessing never imports torch, in the main process or its workers: Megatron-Core's indexed
dataset module would (seconds per process), so the pipeline writes its datasets itself."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import polars as pl

REPO_ROOT = Path(__file__).resolve().parents[3]
TOOL = REPO_ROOT / "tools" / "preprocess_ehr.py"


def imported_modules(importtime_log: str) -> list[str]:
    """Every module named in `-X importtime` output (once per process that imported it)."""
    return re.findall(r"^import time:.*\|\s+(\S+)$", importtime_log, flags=re.MULTILINE)


def test_preprocessing_cli_never_imports_torch(tmp_path):
    (tmp_path / "in").mkdir()
    pl.DataFrame({
        "patient_id": [f"p{i}" for i in range(30) for _ in range(2)],
        "date": ["2019-01-02", "2019-03-04"] * 30,
        "code_system": ["ICD-10-CM", "CPT"] * 30,
        "code": ["I10", "99213"] * 30,
    }).write_parquet(tmp_path / "in" / "events.parquet")
    command = [
        sys.executable, "-X", "importtime", str(TOOL), "--source", "events", "--input", str(tmp_path / "in"),
        "--output-dir", str(tmp_path / "out"), "--workers", "2", "--num-shards", "2",  # two buckets: work in workers
    ]  # fmt: skip
    # This checkout's package, not whichever one is installed (a script's own folder heads sys.path).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "out" / "manifest.json").is_file()
    modules = imported_modules(done.stderr)
    assert modules.count("sparseehr_mcore.data.tasks") >= 2, "no worker ran (or -X importtime did not reach it)"
    assert "torch" not in modules
