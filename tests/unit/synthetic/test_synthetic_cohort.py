"""The written cohort: same seed same bytes, the events-format contract, the command line."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from sparseehr_mcore.synthetic.cli import main
from sparseehr_mcore.synthetic.cohort import CohortConfig, generate_cohort
from sparseehr_mcore.synthetic.model import build_model
from sparseehr_mcore.synthetic.profiles import CLAIMS
from sparseehr_mcore.synthetic.simulate import Simulator

FILES = ("patients.csv", "events.csv", "cohort.json")
REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def model():
    return build_model()


def contents(directory: Path) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in FILES}


@pytest.mark.parametrize("profile", ["claims", "hospital"])
def test_same_seed_same_bytes_across_processes(tmp_path, model, profile):
    config = CohortConfig(patients=150, seed=3, profile=profile)
    generate_cohort(tmp_path / "a", config=config, model=model)
    # Another interpreter with another string-hash seed: no set order or hash() may leak into the bytes.
    env = dict(os.environ, PYTHONHASHSEED="12345")
    done = subprocess.run(
        [sys.executable, "-m", "sparseehr_mcore.synthetic", str(tmp_path / "b"), "--patients", "150",
         "--seed", "3", "--profile", profile, "--no-progress"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert contents(tmp_path / "a") == contents(tmp_path / "b")


def test_different_seed_different_cohort_and_patients_do_not_depend_on_size(tmp_path, model):
    generate_cohort(tmp_path / "s1", config=CohortConfig(patients=60, seed=1), model=model)
    generate_cohort(tmp_path / "s2", config=CohortConfig(patients=60, seed=2), model=model)
    generate_cohort(tmp_path / "big", config=CohortConfig(patients=120, seed=1), model=model)
    assert (tmp_path / "s1" / "events.csv").read_bytes() != (tmp_path / "s2" / "events.csv").read_bytes()
    small = (tmp_path / "s1" / "events.csv").read_text().splitlines()
    big = (tmp_path / "big" / "events.csv").read_text().splitlines()
    assert big[: len(small)] == small  # each patient has its own random stream


def test_events_follow_the_generic_events_contract(tmp_path, model):
    summary = generate_cohort(tmp_path, config=CohortConfig(patients=200, seed=5), model=model)
    with open(tmp_path / "patients.csv", newline="") as stream:
        patients = list(csv.DictReader(stream))
    with open(tmp_path / "events.csv", newline="") as stream:
        reader = csv.DictReader(stream)
        assert reader.fieldnames == ["patient_id", "date", "code_system", "code", "visit_id"]
        events = list(reader)
    assert [p["patient_id"] for p in patients] == [f"C{n:07d}" for n in range(200)]
    assert {p["sex"] for p in patients} == {"F", "M"} and {p["region"] for p in patients} <= {"NE", "MW", "S", "W"}
    keys = [(e["patient_id"], e["date"], e["code_system"], e["code"]) for e in events]
    assert len(keys) == len(set(keys)) == summary.events  # no duplicate row for preprocessing to drop
    assert {e["code_system"] for e in events} == {"ICD10CM", "ICD10PCS"}
    visit_patients, visit_dates = defaultdict(set), defaultdict(set)
    for event in events:
        visit_patients[event["visit_id"]].add(event["patient_id"])
        visit_dates[event["visit_id"]].add(event["date"])
    assert all(len(owners) == 1 for owners in visit_patients.values())
    assert len(visit_patients) == summary.visits
    assert sum(len(dates) > 1 for dates in visit_dates.values()) > 0  # inpatient stays span days
    metadata = json.loads((tmp_path / "cohort.json").read_text())
    assert metadata["config"] == {"patients": 200, "seed": 5, "profile": "claims", "coding": "icd10",
                                  "start_year": 2016, "years": 8}  # fmt: skip
    systems = [event["code_system"] for event in events]
    assert metadata["counts"]["events"] == {"ICD10CM": systems.count("ICD10CM"), "ICD10PCS": systems.count("ICD10PCS")}


def test_icd9_hospital_maps_every_diagnosis(tmp_path, model):
    generate_cohort(tmp_path, config=CohortConfig(patients=150, seed=1, profile="hospital"), model=model)
    with open(tmp_path / "events.csv", newline="") as stream:
        systems = {row["code_system"] for row in csv.DictReader(stream)}
    assert systems == {"ICD9CM", "ICD10PCS"}  # no procedure GEM in the package: PCS stays
    mapping = json.loads((tmp_path / "cohort.json").read_text())["counts"]["icd9_mapping"]
    assert mapping["events_by_outcome"]["unmapped"] == 0
    assert mapping["events_by_outcome"]["exact"] > 0 and mapping["events_by_outcome"]["approximate"] > 0


@pytest.mark.slow
def test_default_size_has_hundreds_of_distinct_codes(model):
    simulator = Simulator(model=model, profile=CLAIMS, seed=CohortConfig().seed)
    codes = set()
    for number in range(CohortConfig().patients):
        for visit in simulator.patient(number).visits:
            codes.update(visit.diagnoses)
            codes.update(code for _, code in visit.procedures)
    assert len(codes) >= 800


def test_command_line_help_states_speed_and_defaults(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for expected in ("patients/s", "--patients", "(default: 4000)", "--seed", "--profile", "--coding",
                     "--start-year", "--years"):  # fmt: skip
        assert expected in text


def test_command_line_writes_and_summarises(tmp_path, capsys):
    assert main([str(tmp_path), "--patients", "20", "--profile", "hospital", "--coding", "icd10", "--no-progress"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{tmp_path}: 20 patients,") and "distinct codes" in line and "patients/s" in line
    assert "ICD10CM" in (tmp_path / "events.csv").read_text()
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--patients", "0"])
