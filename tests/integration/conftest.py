"""Fixtures for end-to-end runs: cohorts preprocessed by the real tools/preprocess_ehr.py."""

from __future__ import annotations

import csv
import random
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# Real ICD-10-CM codes, so that harmonisation keeps them.
ICD10CM_CODES = [
    "E119", "I10", "J45909", "N179", "K219", "F329", "M545", "E785", "I2510", "J449",
    "N390", "K5900", "G4733", "E039", "F419", "M179", "R0789", "Z23", "E6601", "I4891",
]  # fmt: skip


def preprocess(source: str, input_dir: Path, output_dir: Path) -> Path:
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "preprocess_ehr.py"), "--source", source,
         "--input", str(input_dir), "--output-dir", str(output_dir)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return output_dir


@pytest.fixture(scope="session")
def synthetic_preprocessed(tmp_path_factory) -> Path:
    """80 synthetic patients with 2-20 visits each, drawn from per-patient code repertoires (so a
    model can learn something), written as a generic events table and preprocessed."""
    root = tmp_path_factory.mktemp("synthetic")
    tables = root / "tables"
    tables.mkdir()
    rng = random.Random(0)
    with open(tables / "patients.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["patient_id", "sex", "birth_year", "region"])
        for patient in range(80):
            writer.writerow([f"p{patient:03d}", rng.choice("FM"), rng.randint(1930, 2000), rng.choice(["NE", "S", "W"])])
    with open(tables / "events.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["patient_id", "date", "code_system", "code"])
        for patient in range(80):
            repertoire = rng.sample(ICD10CM_CODES, 5)
            for visit in range(rng.randint(2, 20)):
                day = f"2015-{1 + visit % 12:02d}-{1 + (3 * visit) % 28:02d}" if visit < 12 else f"2016-{visit - 11:02d}-15"
                for code in rng.sample(repertoire, rng.randint(1, 3)):
                    writer.writerow([f"p{patient:03d}", day, "ICD10CM", code])
    return preprocess("events", tables, root / "preprocessed")


@pytest.fixture(scope="session")
def mimic_iv_preprocessed(shared_data, tmp_path_factory) -> Path:
    """The MIMIC-IV demo slice in ../shared/data, preprocessed (skips where absent)."""
    return preprocess("mimic-iv", shared_data / "mimic-iv-demo-2.2-dev" / "hosp", tmp_path_factory.mktemp("mimic-iv") / "out")
