"""An input table with a header and no rows (issue 13, item 5): recorded in the manifest and warned
about on the console; with --strict, one line and exit status 2."""

from __future__ import annotations

import gzip
import shutil

import pytest

from sparseehr_mcore.data.manifest import MANIFEST_FILE, read_manifest


@pytest.fixture
def demo_without_procedures(shared_data, tmp_path):
    """A copy of the MIMIC-IV demo slice whose procedures_icd.csv.gz keeps its header and no row."""
    hosp = tmp_path / "hosp"
    shutil.copytree(shared_data / "mimic-iv-demo-2.2-dev" / "hosp", hosp)
    hosp.chmod(0o755)
    procedures = hosp / "procedures_icd.csv.gz"
    with gzip.open(procedures, "rt") as stream:
        header = stream.readline()
    procedures.chmod(0o644)
    with gzip.open(procedures, "wt") as stream:
        stream.write(header)
    return hosp


def test_an_empty_table_is_in_the_manifest_and_warned_about(demo_without_procedures, tmp_path, preprocess_main, capsys):
    out = tmp_path / "out"
    assert preprocess_main(["--source", "mimic-iv", "--input", str(demo_without_procedures), "--output-dir", str(out)]) == 0
    counts = read_manifest(out)["counts"]
    assert counts["empty_tables"] == ["procedures_icd"]
    assert counts["tables"]["procedures_icd"] == {"read": 0, "kept": 0, "dropped": {}}
    assert counts["events"]["read"] == 993 + 15  # diagnoses and HCPCS events, as in ../shared/data/README.md
    err = capsys.readouterr().err
    assert "warning: empty input table(s) procedures_icd" in err and len(err.strip().splitlines()) == 1


def test_strict_refuses_an_empty_table_in_one_line(demo_without_procedures, tmp_path, preprocess_main, capsys):
    out = tmp_path / "out"
    argv = ["--source", "mimic-iv", "--input", str(demo_without_procedures), "--output-dir", str(out), "--strict"]
    with pytest.raises(SystemExit) as stopped:
        preprocess_main(argv)
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "empty input table(s) procedures_icd (procedures_icd.csv.gz): a header and no rows" in err
    assert not (out / MANIFEST_FILE).exists() and not (out / ".work").exists()


def test_full_tables_are_not_called_empty(shared_outputs):
    assert read_manifest(shared_outputs["mimic-iv"])["counts"]["empty_tables"] == []
