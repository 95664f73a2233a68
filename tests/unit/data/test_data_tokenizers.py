"""Tokenizer plugins: round trips, typed unknowns, save/load, the registry and Megatron metadata."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from sparseehr_mcore.data.timeline import (
    CPT,
    ICD9PCS,
    ICD10CM,
    ICD10PCS,
    CodedEvent,
    PatientTimeline,
    age_bucket,
    age_bucket_expr,
    make_bundle,
)
from sparseehr_mcore.tokenization.base import EHRTokenizer
from sparseehr_mcore.tokenization.metadata import METADATA_FILE, load_tokenizer, save_tokenizer
from sparseehr_mcore.tokenization.registry import UnknownTokenizerError, resolve

REPO_TOKENIZERS = Path(__file__).resolve().parents[3] / "tokenizers"


def timeline(patient_id="p1") -> PatientTimeline:
    return PatientTimeline(
        patient_id,
        {"age": "60-64", "sex": "F"},
        (
            make_bundle(dt.date(2020, 1, 3), [CodedEvent(CPT, "99213"), CodedEvent(ICD10CM, "E119"),
                                              CodedEvent(ICD10CM, "I10"), CodedEvent(ICD10CM, "E119")]),
            make_bundle(dt.date(2020, 1, 20), [CodedEvent(ICD10PCS, "0DB6"), CodedEvent(ICD9PCS, "3893")]),
            make_bundle(dt.date(2023, 6, 1), [CodedEvent(ICD10CM, "N179")]),
        ),
    )


def build(name: str, timelines, *, min_count=1):
    plugin = resolve(name)
    counts = Counter()
    for item in timelines:
        counts.update(plugin.terms(item))
    return plugin.from_counts(counts, min_count=min_count)


def test_bundle_order_is_diagnoses_then_procedures_by_code_and_deduplicated():
    first = timeline().bundles[0]
    assert first.events == (CodedEvent(ICD10CM, "E119"), CodedEvent(ICD10CM, "I10"), CodedEvent(CPT, "99213"))


@pytest.mark.parametrize("name", ["typed-codes", "time-gaps"])
def test_round_trip_gives_back_the_timeline(name):
    tokenizer = build(name, [timeline()])
    assert isinstance(tokenizer, EHRTokenizer)
    ids = tokenizer.encode(timeline())
    assert ids[-1] == tokenizer.eod
    assert tokenizer.decode(ids) == PatientTimeline("", timeline().static, timeline().without_dates().bundles)


def test_typed_scheme_tokens_are_the_papers_layout():
    tokenizer = build("typed-codes", [timeline()])
    tokens = [tokenizer.tokens[i] for i in tokenizer.encode(timeline())]
    assert tokens == ["AGE:60-64", "SEX:F", "[BEGIN]", "DX:E119", "DX:I10", "CPT:99213", "[END]",
                      "[BEGIN]", "PX:0DB6", "PX9:3893", "[END]", "[BEGIN]", "DX:N179", "[END]", "[EOD]"]


def test_time_gap_tokens_sit_between_bundles():
    tokenizer = build("time-gaps", [timeline()])
    tokens = [tokenizer.tokens[i] for i in tokenizer.encode(timeline())]
    assert [t for t in tokens if t.startswith("[GAP")] == ["[GAP:1m]", "[GAP:2y+]"]
    assert tokens.index("[GAP:1m]") == tokens.index("[END]") + 1


def test_unknown_codes_become_typed_unknowns():
    tokenizer = build("typed-codes", [timeline()], min_count=2)  # every term seen once: none kept
    other = PatientTimeline("p2", {"age": "90+", "region": "NE"},
                            (make_bundle(None, [CodedEvent(ICD10CM, "Z999"), CodedEvent("LOINC", "1234-5")]),))
    tokens = [tokenizer.tokens[i] for i in tokenizer.encode(other)]
    assert tokens == ["[UNK:AGE]", "[UNK:REGION]", "[BEGIN]", "[UNK:DX]", "[UNK]", "[END]", "[EOD]"]
    assert {tokenizer.special_ids["unk:DX"], tokenizer.special_ids["unk"]} <= tokenizer.unknown_ids


def test_vocabulary_is_specials_then_by_count_with_min_count():
    more = PatientTimeline("p3", {"sex": "M"}, (make_bundle(None, [CodedEvent(ICD10CM, "I10")]),))
    tokenizer = build("typed-codes", [timeline(), more], min_count=2)
    assert tokenizer.tokens[:5] == ["[PAD]", "[EOD]", "[BEGIN]", "[END]", "[UNK]"]
    codes = [t for t in tokenizer.tokens if not t.startswith("[")]
    assert codes == ["DX:I10"]  # the only term seen twice
    assert tokenizer.pad == 0 and tokenizer.eod == 1


@pytest.mark.parametrize("name", ["typed-codes", "time-gaps"])
def test_save_and_load_with_megatron_metadata(tmp_path, name):
    tokenizer = build(name, [timeline()])
    save_tokenizer(tokenizer, tmp_path)
    metadata = json.loads((tmp_path / METADATA_FILE).read_text())
    assert metadata["class_name"] == type(tokenizer).__name__
    assert metadata["class_path"] == type(tokenizer).__module__
    assert metadata["library"] == "sparseehr-mcore" and metadata["plugin"] == name
    loaded = load_tokenizer(tmp_path)
    assert loaded.tokens == tokenizer.tokens
    assert loaded.unique_identifiers == tokenizer.unique_identifiers
    assert loaded.encode(timeline()) == tokenizer.encode(timeline())


def test_registry_resolves_module_class_and_file_path():
    by_name = resolve("typed-codes")
    by_file = resolve(f"{REPO_TOKENIZERS / 'sparseehr_typed_codes.py'}:TypedCodeTokenizer")
    assert by_file.name == by_name.name == "typed-codes"
    assert resolve("sparseehr_mcore.tokenization.typed_codes:TypedCodeTokenizerBase").name == "typed-codes"


def test_registry_unknown_name_lists_what_is_available():
    with pytest.raises(UnknownTokenizerError, match="available: time-gaps, typed-codes"):
        resolve("wordpiece")
    with pytest.raises(UnknownTokenizerError, match="not found"):
        resolve("nowhere/plugin.py:Thing")


def test_age_bucket_expression_matches_the_python_rule():
    ages = list(range(-7, 130))
    frame = pl.DataFrame({"age": [*ages, None]}, schema={"age": pl.Int32})
    assert frame.select(bucket=age_bucket_expr(pl.col("age")))["bucket"].to_list() == [*map(age_bucket, ages), None]
