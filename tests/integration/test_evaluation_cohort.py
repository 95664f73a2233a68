"""The visits an evaluation scores, read from datasets made by the real preprocessing tool: targets,
unknown codes, history, and every visit not scored counted by reason."""

from __future__ import annotations

import csv

import numpy as np
from hf_export_helpers import load_tool_main

from sparseehr_mcore.data.manifest import dataset_prefixes
from sparseehr_mcore.evaluation.codes import CodeSpace
from sparseehr_mcore.evaluation.cohort import read_cohort
from sparseehr_mcore.tokenization.metadata import load_tokenizer


def write_events(directory, rows):
    directory.mkdir(parents=True)
    with open(directory / "events.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["patient_id", "date", "code_system", "code", "visit_id"])
        writer.writerows(rows)
    return directory


def preprocess(source_dir, output, *extra):
    argv = ["--source", "events", "--input", str(source_dir), "--output-dir", str(output), "--split", "1,0,0", *extra]
    assert load_tool_main("preprocess_ehr")(argv) == 0
    return output


def test_targets_unknowns_history_and_skipped_visits(tmp_path):
    vocabulary = preprocess(write_events(tmp_path / "claims", [
        ("c", "2019-01-01", "ICD10CM", "E119", "v1"), ("c", "2019-01-01", "ICD10CM", "I10", "v1"),
        ("c", "2019-02-01", "ICD10CM", "N183", "v2"), ("c", "2019-02-01", "CPT", "99213", "v2"),
    ]), tmp_path / "claims-out")
    hospital = preprocess(write_events(tmp_path / "hospital", [
        # Patient a: visit 1 (E119), visit 2 over two days (a procedure day, then E119, I10 and an
        # unknown code), visit 3 procedure-only, visit 4 only an unknown code.
        ("a", "2020-01-01", "ICD10CM", "E119", "a1"),
        ("a", "2020-02-01", "CPT", "99213", "a2"), ("a", "2020-02-03", "ICD10CM", "E119", "a2"),
        ("a", "2020-02-03", "ICD10CM", "I10", "a2"), ("a", "2020-02-03", "ICD10CM", "K219", "a2"),
        ("a", "2020-03-01", "CPT", "99213", "a3"),
        ("a", "2020-04-01", "ICD10CM", "J449", "a4"),
        # Patient b: one visit only.
        ("b", "2020-01-01", "ICD10CM", "I10", "b1"),
    ]), tmp_path / "hospital-out", "--tokenizer-dir", str(vocabulary / "tokenizer"))
    tokenizer = load_tokenizer(hospital / "tokenizer")
    codes = CodeSpace.from_tokens(tokenizer.tokens)
    cohort = read_cohort(dataset_prefixes(hospital), codes=codes, special_ids=tokenizer.special_ids, context_length=512)
    assert cohort.patients == 2
    assert dict(cohort.skipped) == {"first_visit_of_patient": 2, "visit_without_diagnoses": 1}
    second, fourth = cohort.visits
    column = {code: n for n, code in enumerate(codes.dx_codes)}
    assert (second.number, second.bundles, second.unknown_targets) == (1, 2, 1)
    assert second.targets.tolist() == sorted([column["E119"], column["I10"]])
    assert second.history == {column["E119"]: (1, 0)}
    assert tokenizer.tokens[int(second.context[-1])] == "[BEGIN]"
    assert [tokenizer.tokens[int(i)] for i in second.context if tokenizer.tokens[int(i)].startswith("DX:")] == ["DX:E119"]
    assert (fourth.number, fourth.targets.tolist(), fourth.unknown_targets) == (3, [], 1)
    assert fourth.history == {column["E119"]: (2, 2), column["I10"]: (1, 2)}
    # Day bundles as visits: every bundle after the first is a visit.
    by_day = read_cohort(dataset_prefixes(hospital), codes=codes, special_ids=tokenizer.special_ids,
                         context_length=512, visit_mode="day-bundles")
    assert [v.number for v in by_day.visits] == [2, 4] and by_day.skipped["visit_without_diagnoses"] == 2


def test_long_contexts_are_truncated_to_whole_bundles(tmp_path):
    rows = [("p", f"2020-{m:02d}-01", "ICD10CM", code, f"v{m}") for m in range(1, 13) for code in ("E119", "I10")]
    out = preprocess(write_events(tmp_path / "in", rows), tmp_path / "out")
    tokenizer = load_tokenizer(out / "tokenizer")
    codes = CodeSpace.from_tokens(tokenizer.tokens)
    cohort = read_cohort(dataset_prefixes(out), codes=codes, special_ids=tokenizer.special_ids, context_length=12)
    last = cohort.visits[-1]
    tokens = [tokenizer.tokens[int(i)] for i in last.context]
    assert last.truncated and len(tokens) <= 12 and tokens[-1] == "[BEGIN]"
    assert tokens[0].startswith(("AGE:", "SEX:", "[BEGIN]")) and np.sum(last.context == tokenizer.special_ids["bundle_begin"]) >= 2
    assert last.history[codes.column_of[tokenizer.vocabulary.ids["DX:E119"]]] == (11, 10)  # the whole history
