"""Implausible records planted in a copy of the MIMIC-IV demo slice: an admission discharged before
it began (with diagnoses, procedures and HCPCS events pointing at it) and patients whose age is
negative or beyond --max-age. Each is dropped with its dependants under its own reason, the books
still balance, and --strict stops at the first one naming its file and row."""

from __future__ import annotations

import gzip

import polars as pl
import pytest

from sparseehr_mcore.data.manifest import read_manifest

TABLES = ("patients", "admissions", "diagnoses_icd", "procedures_icd", "hcpcsevents")
OMOP_TABLES = ("person", "visit_occurrence", "condition_occurrence", "procedure_occurrence")
NEW_REASONS = ("discharge_before_admission", "impossible_age")


def read_tables(directory, names=TABLES) -> dict[str, pl.DataFrame]:
    return {name: pl.read_csv(directory / f"{name}.csv.gz", infer_schema_length=0) for name in names}


def assert_only_new_reasons_moved(counts, clean, *, exact: bool):
    """Every table balances, and the new reasons only took rows the clean run kept or dropped:
    `exact`, only rows it kept (when no row of a dropped stay or patient was bad in another way)."""
    for name, table in counts["tables"].items():
        old = clean["tables"][name]
        assert table["read"] == old["read"] == table["kept"] + sum(table["dropped"].values()), name
        others = {r: n for r, n in table["dropped"].items() if r not in NEW_REASONS}
        if exact:
            assert table["kept"] + sum(table["dropped"].get(r, 0) for r in NEW_REASONS) == old["kept"], name
            assert others == old["dropped"], name
        else:
            assert table["kept"] <= old["kept"] and all(n <= old["dropped"][r] for r, n in others.items()), name


def write_tables(tables: dict[str, pl.DataFrame], directory):
    directory.mkdir(parents=True)
    for name, frame in tables.items():
        with gzip.open(directory / f"{name}.csv.gz", "wb") as stream:
            frame.write_csv(stream)
    return directory


def bad_admission(tables) -> str:
    """The first admission (file order) with diagnoses, procedures and HCPCS events."""
    with_all = set(tables["diagnoses_icd"]["hadm_id"]) & set(tables["procedures_icd"]["hadm_id"])
    with_all &= set(tables["hcpcsevents"]["hadm_id"]) or with_all
    return next(h for h in tables["admissions"]["hadm_id"] if h in with_all)


def plant_discharge_before_admission(tables, hadm_id):
    """Discharge three days before the admission day."""
    admissions = tables["admissions"].with_columns(
        dischtime=pl.when(pl.col("hadm_id") == hadm_id)
        .then((pl.col("admittime").str.to_datetime() - pl.duration(days=3)).dt.strftime("%Y-%m-%d %H:%M:%S"))
        .otherwise(pl.col("dischtime"))
    )
    return {**tables, "admissions": admissions}


def plant_impossible_ages(tables, subject_ids):
    """anchor_age 150 for the first patient, -40 for the second (born 40 years after the anchor year)."""
    ages = dict(zip(subject_ids, ("150", "-40")))
    patients = tables["patients"].with_columns(
        anchor_age=pl.col("subject_id").replace_strict(ages, default=pl.col("anchor_age"))
    )
    return {**tables, "patients": patients}


@pytest.fixture(scope="module")
def planted(shared_data, tmp_path_factory):
    """(tables, bad hadm_id, the two patients of impossible age) of a planted copy."""
    tables = read_tables(shared_data / "mimic-iv-demo-2.2-dev" / "hosp")
    hadm_id = bad_admission(tables)
    owner = tables["admissions"].filter(pl.col("hadm_id") == hadm_id)["subject_id"][0]
    aged = [s for s in tables["patients"]["subject_id"] if s != owner][:2]
    return plant_impossible_ages(plant_discharge_before_admission(tables, hadm_id), aged), hadm_id, aged


def test_implausible_rows_are_dropped_with_their_dependants(planted, shared_outputs, preprocess_main, tmp_path):
    tables, hadm_id, aged = planted
    hosp = write_tables(tables, tmp_path / "hosp")
    assert preprocess_main(["--source", "mimic-iv", "--input", str(hosp), "--output-dir", str(tmp_path / "out")]) == 0
    counts = read_manifest(tmp_path / "out")["counts"]
    clean = read_manifest(shared_outputs["mimic-iv"])["counts"]
    assert_only_new_reasons_moved(counts, clean, exact=True)
    # The stay and every row that points at it, under one reason.
    assert counts["tables"]["admissions"]["dropped"] == {"discharge_before_admission": 1}
    for name in ("diagnoses_icd", "procedures_icd", "hcpcsevents"):
        pointing = tables[name].filter(pl.col("hadm_id") == hadm_id).height
        assert counts["tables"][name]["dropped"].get("discharge_before_admission", 0) == pointing, name
    assert counts["visits"]["kept"] == clean["visits"]["kept"] - 1
    # The two patients and every row of theirs that would have been kept.
    assert counts["tables"]["patients"]["dropped"] == {"impossible_age": 2}
    assert counts["patients"]["kept"] == clean["patients"]["kept"] - 2 == sum(counts["patients_written"].values())
    theirs = tables["diagnoses_icd"].filter(pl.col("subject_id").is_in(aged)).height
    assert counts["tables"]["diagnoses_icd"]["dropped"]["impossible_age"] == theirs


def test_omop_visit_ending_before_it_starts_and_birth_year_in_the_future(
    shared_data, shared_outputs, preprocess_main, tmp_path
):
    tables = read_tables(shared_data / "synpuf-omop-50", OMOP_TABLES)
    pointed = set(tables["condition_occurrence"]["visit_occurrence_id"]) & set(
        tables["procedure_occurrence"]["visit_occurrence_id"])
    visit = tables["visit_occurrence"].filter(pl.col("visit_occurrence_id").is_in(pointed)).row(0, named=True)
    ended_before = (pl.col("visit_start_date").str.to_date() - pl.duration(days=5)).dt.strftime("%Y-%m-%d")
    tables["visit_occurrence"] = tables["visit_occurrence"].with_columns(
        visit_end_date=pl.when(pl.col("visit_occurrence_id") == visit["visit_occurrence_id"]).then(ended_before)
        .otherwise(pl.col("visit_end_date")))
    unborn = next(p for p in tables["condition_occurrence"]["person_id"] if p != visit["person_id"])
    tables["person"] = tables["person"].with_columns(
        year_of_birth=pl.when(pl.col("person_id") == unborn).then(pl.lit("2090")).otherwise(pl.col("year_of_birth")))
    omop = write_tables(tables, tmp_path / "omop")
    assert preprocess_main(["--source", "omop", "--input", str(omop), "--output-dir", str(tmp_path / "out")]) == 0
    counts = read_manifest(tmp_path / "out")["counts"]
    # Some rows of the bad visit were duplicates or unmapped in the clean run: the visit's rule comes first.
    assert_only_new_reasons_moved(counts, read_manifest(shared_outputs["omop"])["counts"], exact=False)
    assert counts["tables"]["visit_occurrence"]["dropped"] == {"discharge_before_admission": 1}
    for name in ("condition_occurrence", "procedure_occurrence"):
        pointing = tables[name].filter(pl.col("visit_occurrence_id") == visit["visit_occurrence_id"]).height
        assert counts["tables"][name]["dropped"]["discharge_before_admission"] == pointing, name
    assert counts["tables"]["person"]["dropped"]["impossible_age"] == 1
    assert counts["tables"]["condition_occurrence"]["dropped"]["impossible_age"] > 0


def test_mimic_iii_shifted_ages_of_patients_over_89_are_plausible(shared_outputs):
    """MIMIC-III puts the birth of patients over 89 300 years before their first admission."""
    manifest = read_manifest(shared_outputs["mimic-iii"])
    assert "impossible_age" not in manifest["counts"]["patients"]["dropped"]
    vocab = (shared_outputs["mimic-iii"] / "tokenizer" / "vocab.json").read_text()
    assert '"AGE:90+"' in vocab


def test_strict_stops_at_the_implausible_admission(planted, preprocess_main, tmp_path, capsys):
    tables, hadm_id, _ = planted
    hosp = write_tables(tables, tmp_path / "hosp")
    row = tables["admissions"]["hadm_id"].to_list().index(hadm_id) + 1
    with pytest.raises(SystemExit) as stopped:
        preprocess_main(["--source", "mimic-iv", "--input", str(hosp), "--output-dir", str(tmp_path / "o"), "--strict"])
    assert stopped.value.code == 2
    message = capsys.readouterr().err
    assert message.count("\n") == 1
    assert f"admissions.csv.gz: data row {row}: discharge_before_admission" in message and hadm_id in message


def test_strict_stops_at_the_first_patient_of_impossible_age(planted, shared_data, preprocess_main, tmp_path, capsys):
    """On the rows of the two patients only: the slice's other patients have duplicate rows, which
    strict mode would stop at first."""
    _, _, aged = planted
    tables = read_tables(shared_data / "mimic-iv-demo-2.2-dev" / "hosp")
    kept = {k: t.filter(pl.col("subject_id").is_in(aged)) for k, t in tables.items()}
    # The two patients have no HCPCS rows, and --strict refuses an empty table: give one of them one.
    admission = kept["admissions"].row(0, named=True)
    kept["hcpcsevents"] = tables["hcpcsevents"].head(1).with_columns(
        pl.lit(admission["subject_id"]).cast(tables["hcpcsevents"]["subject_id"].dtype).alias("subject_id"),
        pl.lit(admission["hadm_id"]).cast(tables["hcpcsevents"]["hadm_id"].dtype).alias("hadm_id"))
    tables = plant_impossible_ages(kept, aged)
    hosp = write_tables(tables, tmp_path / "hosp")
    row = min(tables["patients"]["subject_id"].to_list().index(s) for s in aged) + 1
    with pytest.raises(SystemExit) as stopped:
        preprocess_main(["--source", "mimic-iv", "--input", str(hosp), "--output-dir", str(tmp_path / "o"), "--strict"])
    assert stopped.value.code == 2
    message = capsys.readouterr().err
    assert message.count("\n") == 1 and f"patients.csv.gz: data row {row}: impossible_age" in message
    with pytest.raises(SystemExit):  # a wider limit than 150 does not make -40 plausible
        preprocess_main(["--source", "mimic-iv", "--input", str(hosp), "--output-dir", str(tmp_path / "o"), "--strict",
                         "--max-age", "200"])
    assert "age=-" in capsys.readouterr().err
