"""Visit boundaries travel from the source tables to a sidecar index beside every split dataset."""

from __future__ import annotations

import csv
import gzip

import numpy as np
import pytest

from sparseehr_mcore.data.indexed import open_dataset
from sparseehr_mcore.data.ledger import PreprocessError
from sparseehr_mcore.data.manifest import dataset_prefixes, read_manifest
from sparseehr_mcore.data.visits import visits_by_document, visits_path
from sparseehr_mcore.tokenization.metadata import load_tokenizer


def write_events(directory, rows, *, with_visits=True):
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "events.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["patient_id", "date", "code_system", "code"] + (["visit_id"] if with_visits else []))
        for row in rows:
            writer.writerow(row if with_visits else row[:4])
    return directory


def preprocess(preprocess_main, input_dir, output, *extra):
    assert preprocess_main(["--source", "events", "--input", str(input_dir), "--output-dir", str(output),
                            "--split", "1,0,0", *extra]) == 0
    return output


def bundle_codes(output, document=0):
    """Per bundle of one patient, its codes (decoded)."""
    tokenizer = load_tokenizer(output / "tokenizer")
    dataset = open_dataset(dataset_prefixes(output)["train"])  # alive while its memory map is read
    timeline = tokenizer.decode(dataset[document])
    return [[event.code for event in bundle.events] for bundle in timeline.bundles]


ROWS = [
    # A stay over days 1-3 (procedure days, then discharge-day diagnoses).
    ("p", "2020-01-01", "ICD10PCS", "0DB68ZX", "stay-A"),
    ("p", "2020-01-02", "ICD10PCS", "0FT44ZZ", "stay-A"),
    ("p", "2020-01-03", "ICD10CM", "K8000", "stay-A"),
    # Day 5: an event without a visit and an outpatient visit: one bundle, one visit.
    ("p", "2020-01-05", "ICD10CM", "I10", ""),
    ("p", "2020-01-05", "ICD10CM", "E119", "clinic-B"),
    # Days 7-8: a stay; a second visit begins on its last day and stays part of it.
    ("p", "2020-01-07", "ICD10CM", "J189", "stay-C"),
    ("p", "2020-01-08", "ICD10CM", "J9601", "stay-C"),
    ("p", "2020-01-08", "ICD10CM", "Z23", "clinic-D"),
    # Day 9: clinic-D again (it began on day 8 inside stay-C): not a new visit.
    ("p", "2020-01-09", "ICD10CM", "Z23", "clinic-D"),
    # Day 20: a visit of its own.
    ("p", "2020-01-20", "ICD10CM", "I10", "clinic-E"),
]


def test_visit_ids_group_bundles_into_visits(tmp_path, preprocess_main):
    out = preprocess(preprocess_main, write_events(tmp_path / "in", ROWS), tmp_path / "out")
    assert bundle_codes(out) == [["0DB6"], ["0FT4"], ["K800"], ["E119", "I10"], ["J189"], ["J960", "Z23"], ["Z23"],
                                 ["I10"]]
    (starts,) = visits_by_document(dataset_prefixes(out)["train"], 1)
    assert starts.tolist() == [0, 3, 4, 7]
    manifest = read_manifest(out)
    assert manifest["counts"]["visits_written"] == {"train": 4, "valid": 0, "test": 0}
    assert manifest["visit_index"] == {"source": "the events table's visit_id column (where present)",
                                       "files": {"train": "train.visits.npy"}}


def test_without_visit_ids_every_bundle_is_a_visit(tmp_path, preprocess_main):
    out = preprocess(preprocess_main, write_events(tmp_path / "in", ROWS, with_visits=False), tmp_path / "out")
    (starts,) = visits_by_document(dataset_prefixes(out)["train"], 1)
    assert starts.tolist() == list(range(len(bundle_codes(out))))


def test_mimic_iv_visits_are_its_admissions(shared_outputs, shared_data):
    out = shared_outputs["mimic-iv"]
    prefixes = dataset_prefixes(out)
    manifest = read_manifest(out)
    hosp = shared_data / "mimic-iv-demo-2.2-dev" / "hosp"
    with gzip.open(hosp / "admissions.csv.gz", "rt") as stream:
        admissions = {row["hadm_id"]: row["subject_id"] for row in csv.DictReader(stream)}
    # Every demo admission has diagnoses (so kept events) and no two share a first day.
    assert sum(manifest["counts"]["visits_written"].values()) == len(admissions) == 57
    tokenizer = load_tokenizer(out / "tokenizer")
    begin = tokenizer.special_ids["bundle_begin"]
    for split, prefix in prefixes.items():
        dataset = open_dataset(prefix)
        for document, starts in enumerate(visits_by_document(prefix, len(dataset))):
            bundles = int((dataset[document] == begin).sum())
            assert starts[0] == 0 and np.all(np.diff(starts) > 0) and starts[-1] < bundles
    # One admission spans several bundles: more bundles than visits overall.
    datasets = [open_dataset(p) for p in prefixes.values()]
    assert sum(int((d[i] == begin).sum()) for d in datasets for i in range(len(d))) > 57


def test_missing_visit_index_is_a_clear_error(tmp_path, preprocess_main):
    out = preprocess(preprocess_main, write_events(tmp_path / "in", ROWS), tmp_path / "out")
    visits_path(out / "train").unlink()
    with pytest.raises(PreprocessError, match="preprocessed before visit indices existed"):
        visits_by_document(out / "train", 1)
