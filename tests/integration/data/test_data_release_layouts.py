"""`--input` takes a release folder as downloaded: the datasets are those of the bare table folder.

Each release is rebuilt in tmp_path from the shared tables (symlinks, or decompressed or renamed
copies) in the shape its publisher ships it, with the files around the tables that come with it.
"""

from __future__ import annotations

import gzip
import json
import shutil

import polars as pl
import pytest


def output_bytes(output, *, manifest=True) -> dict:
    """Every output file's bytes (the work directory left out), by path relative to `output`."""
    files = [p for p in sorted(output.rglob("*")) if p.is_file() and ".work" not in p.relative_to(output).parts]
    return {str(p.relative_to(output)): p.read_bytes() for p in files if manifest or p.name != "manifest.json"}


def manifest_without_inputs(output) -> dict:
    """The manifest less `inputs` (file names, sizes and hashes differ when the files were renamed or
    decompressed; the tables' contents do not)."""
    manifest = json.loads((output / "manifest.json").read_text())
    return {key: value for key, value in manifest.items() if key != "inputs"}


def run(preprocess_main, source, input_dir, output, *extra):
    assert preprocess_main(["--source", source, "--input", str(input_dir), "--output-dir", str(output), *extra]) == 0
    return output


def link_tables(source_dir, target_dir, rename=lambda name: name):
    target_dir.mkdir(parents=True, exist_ok=True)
    for path in sorted(source_dir.iterdir()):
        if path.is_file() and path.name.endswith(".csv.gz"):
            (target_dir / rename(path.name)).symlink_to(path)


def test_mimic_iv_release_root_with_hosp(shared_data, shared_outputs, preprocess_main, tmp_path):
    """mimic-iv-2.2/{LICENSE.txt, SHA256SUMS.txt, hosp/*.csv.gz, icu/}: the root as PhysioNet ships it."""
    root = tmp_path / "mimic-iv-2.2"
    link_tables(shared_data / "mimic-iv-demo-2.2-dev" / "hosp", root / "hosp")
    (root / "icu").mkdir()
    (root / "LICENSE.txt").write_text("Open Data Commons Open Database License v1.0\n")
    (root / "SHA256SUMS.txt").write_text("")
    out = run(preprocess_main, "mimic-iv", root, tmp_path / "out")
    assert output_bytes(out) == output_bytes(shared_outputs["mimic-iv"])


def test_mimic_iii_release_roots(shared_data, shared_outputs, preprocess_main, tmp_path):
    """The full release (upper-case .csv.gz at the root, with README and checksums) and the demo as
    downloaded (the same names, uncompressed .csv) give the datasets of the flat run."""
    gems = ["--gem-dir", str(shared_data / "cms-gems-2018")]
    full = tmp_path / "mimic-iii-clinical-database-1.4"
    link_tables(shared_data / "mimic-iii-demo-1.4", full)
    (full / "README.md").write_text("MIMIC-III v1.4\n")
    (full / "SHA256SUMS.txt").write_text("")
    out = run(preprocess_main, "mimic-iii", full, tmp_path / "out-full", *gems)
    assert output_bytes(out) == output_bytes(shared_outputs["mimic-iii"])

    demo = tmp_path / "mimic-iii-clinical-database-demo-1.4"
    demo.mkdir()
    for path in (shared_data / "mimic-iii-demo-1.4").glob("*.csv.gz"):
        with gzip.open(path) as packed, open(demo / path.name.removesuffix(".gz"), "wb") as plain:
            shutil.copyfileobj(packed, plain)
    out = run(preprocess_main, "mimic-iii", demo, tmp_path / "out-demo", *gems)
    assert output_bytes(out, manifest=False) == output_bytes(shared_outputs["mimic-iii"], manifest=False)
    assert manifest_without_inputs(out) == manifest_without_inputs(shared_outputs["mimic-iii"])
    assert [item["file"] for item in json.loads((out / "manifest.json").read_text())["inputs"]] == [
        "PATIENTS.csv", "ADMISSIONS.csv", "DIAGNOSES_ICD.csv", "PROCEDURES_ICD.csv"
    ]


def test_omop_export_folder(shared_data, shared_outputs, preprocess_main, tmp_path):
    """An export with upper-case table names and the CDM tables this pipeline does not read."""
    export = tmp_path / "omop-export"
    link_tables(shared_data / "synpuf-omop-50", export, rename=str.upper)
    for extra in ("CDM_SOURCE.csv", "OBSERVATION_PERIOD.csv", "CONCEPT.csv"):
        (export / extra).write_text("id\n1\n")
    out = run(preprocess_main, "omop", export, tmp_path / "out")
    assert output_bytes(out, manifest=False) == output_bytes(shared_outputs["omop"], manifest=False)
    assert manifest_without_inputs(out) == manifest_without_inputs(shared_outputs["omop"])


def test_meds_root_and_its_data_folder(preprocess_main, tmp_path):
    """A MEDS root (data/ with shards, metadata/ beside it) reads as its data/ folder does."""
    root = tmp_path / "meds"
    (root / "data" / "train").mkdir(parents=True)
    (root / "metadata").mkdir()
    pl.DataFrame({"subject_id": [1, 1, 2], "time": ["2020-01-01", "2020-02-01", "2021-03-03"],
                  "code": ["ICD10CM//E11.9", "ICD10CM//I10", "ICD10CM//J45.909"]}).write_parquet(
        root / "data" / "train" / "0.parquet")
    pl.DataFrame({"code": ["ICD10CM//I10"], "description": ["hypertension"]}).write_parquet(
        root / "metadata" / "codes.parquet")
    from_root = run(preprocess_main, "meds", root, tmp_path / "from-root")
    from_data = run(preprocess_main, "meds", root / "data", tmp_path / "from-data")
    assert output_bytes(from_root, manifest=False) == output_bytes(from_data, manifest=False)
    tables = json.loads((from_root / "manifest.json").read_text())["counts"]["tables"]
    assert list(tables) == ["data/train/0.parquet"]  # metadata/ is not data


def test_a_release_without_a_table_names_what_and_where(shared_data, preprocess_main, tmp_path, capsys):
    root = tmp_path / "mimic-iv-2.2"
    link_tables(shared_data / "mimic-iv-demo-2.2-dev" / "hosp", root / "hosp")
    (root / "hosp" / "patients.csv.gz").unlink()
    (root / "LICENSE.txt").write_text("")
    with pytest.raises(SystemExit) as stopped:
        preprocess_main(["--source", "mimic-iv", "--input", str(root), "--output-dir", str(tmp_path / "out")])
    assert stopped.value.code == 2
    message = capsys.readouterr().err
    assert message.count("\n") == 1 and "no patients table for --source mimic-iv" in message
    assert f"looked in {root} (has LICENSE.txt, hosp/); {root / 'hosp'} (has admissions.csv.gz," in message

    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit):
        preprocess_main(["--source", "meds", "--input", str(tmp_path / "empty"), "--output-dir", str(tmp_path / "o")])
    message = capsys.readouterr().err
    assert f"no **/*.parquet files for --source meds; looked in {tmp_path / 'empty' / 'data'} (absent)" in message
