"""MEDS parquet and the generic events table (Parquet) through the same pipeline."""

from __future__ import annotations

import datetime as dt

import polars as pl

from sparseehr_mcore.data.indexed import open_dataset
from sparseehr_mcore.data.manifest import dataset_prefixes, read_manifest
from sparseehr_mcore.tokenization.metadata import load_tokenizer


def test_meds_shards_with_static_rows(tmp_path, preprocess_main):
    data = tmp_path / "meds" / "data" / "train"
    data.mkdir(parents=True)
    rows = [
        (1, None, "GENDER//F"), (1, dt.datetime(1950, 5, 1), "MEDS_BIRTH"),
        (1, dt.datetime(2020, 1, 1, 10), "ICD10CM//E11.9"), (1, dt.datetime(2020, 1, 1, 12), "ICD9CM//401.9"),
        (1, dt.datetime(2020, 2, 1), "HCPCS//G0378"), (1, dt.datetime(2020, 2, 1), "LAB//1234"),
        (1, None, "ICD10CM//I10"),
    ]
    schema = {"subject_id": pl.Int64, "time": pl.Datetime, "code": pl.Utf8}
    pl.DataFrame(rows, schema=schema, orient="row").write_parquet(data / "0.parquet")
    more = [(2, dt.datetime(2021, 3, 3), "ICD10CM//J45.909"), (2, dt.datetime(2021, 3, 3), "ICD10CM//J45.909")]
    pl.DataFrame(more, schema=schema, orient="row").write_parquet(data / "1.parquet")
    out = tmp_path / "out"
    assert preprocess_main(["--source", "meds", "--input", str(tmp_path / "meds"), "--output-dir", str(out),
                            "--split", "1,0,0"]) == 0
    manifest = read_manifest(out)
    events = manifest["counts"]["events"]
    assert events["read"] == 9 and events["kept"] == 6
    assert events["dropped"] == {"duplicate_row": 1, "missing_value": 1, "unknown_code_system": 1}
    tokenizer = load_tokenizer(out / "tokenizer")
    dataset = open_dataset(dataset_prefixes(out)["train"])
    decoded = [tokenizer.decode(dataset[i]) for i in range(len(dataset))]
    first = next(t for t in decoded if t.static.get("sex") == "F")
    assert first.static == {"age": "70-74", "sex": "F"}
    assert [[e.code for e in b.events] for b in first.bundles] == [["E119", "I10"], ["G0378"]]


def test_events_parquet_without_patient_table(tmp_path, preprocess_main):
    (tmp_path / "in").mkdir()
    pl.DataFrame({
        "patient_id": ["a", "a", "b"], "date": ["2019-01-02", "2019-01-09", "2019-05-05"],
        "code_system": ["ICD-10-CM", "CPT", "ICD10PCS"], "code": ["I10", "99213", "0DB68ZX"],
    }).write_parquet(tmp_path / "in" / "events.parquet")
    out = tmp_path / "out"
    assert preprocess_main(["--source", "events", "--input", str(tmp_path / "in"), "--output-dir", str(out),
                            "--split", "1,0,0", "--tokenizer", "time-gaps"]) == 0
    manifest = read_manifest(out)
    assert manifest["counts"]["events"] == {"read": 3, "kept": 3, "dropped": {}}
    assert manifest["tokenizer"]["name"] == "time-gaps"
    tokenizer = load_tokenizer(out / "tokenizer")
    dataset = open_dataset(dataset_prefixes(out)["train"])
    tokens = sorted(" ".join(tokenizer.tokens[i] for i in dataset[d]) for d in range(len(dataset)))
    assert tokens == ["[BEGIN] DX:I10 [END] [GAP:1w] [BEGIN] CPT:99213 [END] [EOD]", "[BEGIN] PX:0DB6 [END] [EOD]"]
