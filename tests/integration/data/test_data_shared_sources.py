"""The real MIMIC-IV slice, MIMIC-III demo and SynPUF OMOP through tools/preprocess_ehr.py."""

from __future__ import annotations

import json
import re

import numpy as np
import polars as pl
import pytest

from sparseehr_mcore.data.buckets import iter_timelines
from sparseehr_mcore.data.indexed import open_dataset
from sparseehr_mcore.data.manifest import dataset_prefixes, read_manifest
from sparseehr_mcore.data.partition import SPLITS
from sparseehr_mcore.data.timeline import PatientTimeline
from sparseehr_mcore.tokenization.metadata import load_tokenizer

EXPECTED_READ = {  # rows in ../shared/data/README.md
    "mimic-iv": {"patients": 25, "visits": 57, "events": 993 + 171 + 15},
    "mimic-iii": {"patients": 100, "visits": 129, "events": 1761 + 506},
    "omop": {"patients": 50, "visits": 1847, "events": 5121 + 4713},
}


@pytest.mark.parametrize("source", sorted(EXPECTED_READ))
def test_every_row_is_kept_or_dropped_with_a_reason(shared_outputs, source):
    manifest = read_manifest(shared_outputs[source])
    counts = manifest["counts"]
    for role, read in EXPECTED_READ[source].items():
        assert counts[role]["read"] == read, role
        assert counts[role]["read"] == counts[role]["kept"] + sum(counts[role]["dropped"].values()), role
    for name, table in counts["tables"].items():
        assert table["read"] == table["kept"] + sum(table["dropped"].values()), name
    assert set(manifest["drop_examples"]) == {r for t in counts["tables"].values() for r in t["dropped"]}
    assert sum(counts["patients_written"].values()) == counts["patients"]["kept"]


@pytest.mark.parametrize("source", sorted(EXPECTED_READ))
def test_manifest_records_inputs_rules_tokenizer_and_split(shared_outputs, source):
    output = shared_outputs[source]
    manifest = read_manifest(output)
    assert len(manifest["inputs"]) == 4 + (source == "mimic-iv")
    assert all(len(item["sha256"]) == 64 for item in manifest["inputs"])
    harmonisation = manifest["harmonisation"]
    assert len(harmonisation["fingerprint"]) == 64
    assert (harmonisation["procedure_gem"] is not None) == (source == "mimic-iii")
    for system, coverage in harmonisation["coverage"].items():
        assert set(coverage["events"]) <= {"exact", "approximate", "combination", "reverse_gem", "fallback", "unmapped",
                                          "malformed"}
    assert manifest["tokenizer"]["name"] == "typed-codes"
    assert manifest["tokenizer"]["vocab_size"] == len(json.loads((output / "tokenizer" / "vocab.json").read_text()))
    assert manifest["split"]["seed"] == 1234
    assert set(manifest["datasets"]) == {s for s in SPLITS if manifest["counts"]["patients_written"][s]}


@pytest.mark.parametrize("source", sorted(EXPECTED_READ))
def test_datasets_open_with_megatron_and_decode_to_the_harmonised_timelines(shared_outputs, source):
    output = shared_outputs[source]
    manifest = read_manifest(output)
    tokenizer = load_tokenizer(output / "tokenizer")
    work = output / "timelines"  # the built timelines every run keeps (for --retokenize)
    patients = pl.concat([pl.read_parquet(p) for p in sorted(work.glob("*.patients.parquet"))])
    events = pl.concat([pl.read_parquet(p) for p in sorted(work.glob("*.events.parquet"))])
    expected = {split: [] for split in SPLITS}
    for split, timeline in iter_timelines(patients, events):
        expected[split].append(timeline)
    prefixes = dataset_prefixes(output)
    assert set(prefixes) == {split for split in SPLITS if expected[split]}  # empty splits get no files
    for split, prefix in prefixes.items():
        dataset = open_dataset(prefix)
        assert len(dataset) == manifest["counts"]["patients_written"][split] == len(expected[split])
        assert int(dataset.sequence_lengths.sum()) == manifest["counts"]["tokens_written"][split]
        for index, timeline in enumerate(expected[split]):
            ids = dataset[index]
            assert ids.dtype == np.int32 and ids[-1] == tokenizer.eod
            decoded = tokenizer.decode(ids)
            if split == "train":  # the vocabulary was built from train: every code is known
                assert decoded == PatientTimeline("", timeline.static, timeline.without_dates().bundles)
            else:
                assert len(decoded.bundles) == len(timeline.bundles)


def test_mimic_iv_mixes_icd9_and_icd10_into_one_space(shared_outputs):
    coverage = read_manifest(shared_outputs["mimic-iv"])["harmonisation"]["coverage"]
    assert {"ICD9CM", "ICD10CM", "ICD9PCS", "ICD10PCS", "CPT"} <= set(coverage)
    vocab = json.loads((shared_outputs["mimic-iv"] / "tokenizer" / "vocab.json").read_text())
    # ICD-9 401.9 / 250.00 (in the slice) and ICD-10 I10 / E11.9 meet in the same tokens.
    assert {"DX:I10", "DX:E119"} <= set(vocab)
    diagnoses = [t for t in vocab if t.startswith("DX:")]
    assert diagnoses and all(re.fullmatch(r"DX:[A-Z][0-9][0-9A-Z]{1,2}", t) for t in diagnoses)  # 4-char prefixes


def test_reused_tokenizer_is_frozen_and_counts_unknowns(shared_outputs, preprocess_main, shared_data, tmp_path):
    pretraining = shared_outputs["omop"]
    status = preprocess_main([
        "--source", "mimic-iv", "--input", str(shared_data / "mimic-iv-demo-2.2-dev" / "hosp"),
        "--output-dir", str(tmp_path), "--tokenizer-dir", str(pretraining / "tokenizer"),
    ])
    assert status == 0
    assert (tmp_path / "tokenizer" / "vocab.json").read_bytes() == (pretraining / "tokenizer" / "vocab.json").read_bytes()
    manifest = read_manifest(tmp_path)
    assert manifest["tokenizer"]["reused"] is True
    unknown = manifest["counts"]["unknown_tokens"]
    assert unknown.get("[UNK:DX]", 0) > 0  # MIMIC-IV has diagnoses SynPUF never saw
    tokenizer = load_tokenizer(tmp_path / "tokenizer")
    dataset = open_dataset(dataset_prefixes(tmp_path)["train"])
    seen = np.concatenate([dataset[i] for i in range(len(dataset))])
    assert int(np.isin(seen, list(tokenizer.unknown_ids)).sum()) <= sum(unknown.values())
