"""The reverse-GEM step end to end: on by default, switchable, fingerprinted, counted per source system."""

from __future__ import annotations

import pytest

from sparseehr_mcore.data.manifest import read_manifest

EVENTS = [
    "patient_id,date,code_system,code",
    "p1,2012-01-01,ICD9CM,E935.2",  # reverse_gem: forward "no map", named by T40.0X5A, T40.2X5A, ...
    "p1,2012-01-01,ICD9CM,250.00",  # approximate
    "p1,2012-02-01,ICD9CM,567.2",  # fallback: header code, children all in K65
    "p2,2012-03-01,ICD9CM,E935.2",
    "p2,2012-03-01,ICD9CM,E934.7",  # unmapped: no reverse entry, category maps to many
    "p2,2012-03-01,ICD10CM,E11.9",  # exact
]


def run(preprocess_main, tmp_path, name, *extra):
    tables = tmp_path / "in"
    tables.mkdir(exist_ok=True)
    (tables / "events.csv").write_text("\n".join(EVENTS) + "\n")
    out = tmp_path / name
    assert preprocess_main(["--source", "events", "--input", str(tables), "--output-dir", str(out), *extra]) == 0
    return read_manifest(out)


def test_coverage_counts_the_reverse_gem_and_the_switch_undoes_it(preprocess_main, tmp_path):
    on = run(preprocess_main, tmp_path, "on")
    assert on["harmonisation"]["coverage"]["ICD9CM"] == {
        "codes": {"approximate": 1, "fallback": 1, "reverse_gem": 1, "unmapped": 1},
        "events": {"approximate": 1, "fallback": 1, "reverse_gem": 2, "unmapped": 1},
    }
    assert on["counts"]["events"]["dropped"] == {"unmapped_code": 1}
    assert on["harmonisation"]["reverse_diagnosis_gem"]["origin"].endswith("icd10cmtoicd9gem.csv")
    assert "DX:T400" in (tmp_path / "on" / "tokenizer" / "vocab.json").read_text()

    off = run(preprocess_main, tmp_path, "off", "--no-reverse-gem")
    assert off["harmonisation"]["coverage"]["ICD9CM"]["codes"] == {"approximate": 1, "fallback": 1, "unmapped": 2}
    assert off["counts"]["events"]["dropped"] == {"unmapped_code": 3}
    assert off["flags"]["reverse_gem"] is False and on["flags"]["reverse_gem"] is True
    assert off["harmonisation"]["reverse_diagnosis_gem"] is None
    assert off["harmonisation"]["fingerprint"] != on["harmonisation"]["fingerprint"]


# Distinct ICD-9 codes by outcome in ../shared/data (docs/data.md, "Harmonisation coverage"); mimic-iii
# runs with --gem-dir (CMS files, procedures mapped), the others with the package GEMs.
SHARED_UNMAPPED = {
    "mimic-iv": {"ICD9CM": {"reverse_gem": 2, "unmapped": 2}},
    "mimic-iii": {"ICD9CM": {"reverse_gem": 16, "unmapped": 5}, "ICD9PCS": {"reverse_gem": 9, "unmapped": 3}},
    "omop": {"ICD9CM": {"reverse_gem": 7, "unmapped": 9}},
}


@pytest.mark.parametrize("source", sorted(SHARED_UNMAPPED))
def test_reverse_gem_coverage_on_the_shared_sources(shared_outputs, source):
    coverage = read_manifest(shared_outputs[source])["harmonisation"]["coverage"]
    for system, expected in SHARED_UNMAPPED[source].items():
        codes = coverage[system]["codes"]
        assert {outcome: codes.get(outcome, 0) for outcome in expected} == expected, system
