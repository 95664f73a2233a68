"""Recall@K, its variants and intervals, the baselines and the binary endpoint, on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from sparseehr_mcore.evaluation.baselines import History, PopulationFrequency, population_counts
from sparseehr_mcore.evaluation.codes import CodeSpace, icd10_chapter, token_type
from sparseehr_mcore.evaluation.cohort import Visit
from sparseehr_mcore.evaluation.endpoint import classification, endpoint_report, parse_code_ranges
from sparseehr_mcore.evaluation.metrics import Targets, breakdowns, recall_table, target_ranks

TOKENS = ["[PAD]", "[EOD]", "[BEGIN]", "[END]", "[UNK]", "[UNK:DX]", "AGE:40-44", "SEX:F",
          "DX:E119", "DX:I10", "DX:E1165", "DX:J449", "DX:N183", "CPT:99213", "PX:0DB6"]  # fmt: skip


def targets_of(visit_targets: list[list[int]], *, unknown=None, patient=None, rare=None, repeat=None) -> Targets:
    visit = np.array([v for v, t in enumerate(visit_targets) for _ in t], dtype=np.int64)
    column = np.array([c for t in visit_targets for c in t], dtype=np.int64)
    n = len(column)
    return Targets(
        visit=visit, column=column,
        rare=np.array(rare if rare is not None else [False] * n), repeat=np.array(repeat if repeat is not None else [False] * n),
        chapter=np.array(["E00-E89"] * n, dtype=object),
        patient=np.array(patient if patient is not None else range(len(visit_targets)), dtype=np.int64),
        unknown=np.array(unknown if unknown is not None else [0] * len(visit_targets), dtype=np.float64),
    )


def test_ranks_order_by_score_then_by_column():
    scores = np.array([0.5, 0.9, 0.5, 0.1, 0.9])
    assert target_ranks(scores, np.array([1, 4, 0, 2, 3])).tolist() == [0, 1, 2, 3, 4]
    assert target_ranks(scores, np.array([], dtype=np.int64)).tolist() == []


def test_recall_variants_match_hand_counts():
    # Visit 0: targets ranked 0 and 5 (|Y|=2); visit 1: target ranked 1 plus 2 unknown codes (|Y|=1, u=2).
    targets = targets_of([[10, 11], [12]], unknown=[0, 2])
    ranks = np.array([0, 5, 1])
    table = recall_table(targets, ranks, ks=(1, 2, 10))
    assert table["recall"] == {1: pytest.approx(0.25), 2: pytest.approx(0.75), 10: pytest.approx(1.0)}
    assert table["recall_with_unknown"][2] == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert table["pooled"][2] == pytest.approx(2 / 3)
    assert table["accuracy_gram"][1] == pytest.approx((1 / 1 + 0 / 1) / 2)
    assert table["accuracy_gram"][10] == pytest.approx(1.0)
    assert (table["visits"], table["targets"], table["unknown_targets"]) == (2, 3, 2)


def test_a_visit_of_only_unknown_codes_counts_only_with_unknowns():
    targets = targets_of([[10], []], unknown=[0, 3])
    table = recall_table(targets, np.array([0]), ks=(1,))
    assert table["recall"][1] == 1.0 and table["visits"] == 1
    assert table["recall_with_unknown"][1] == pytest.approx(0.5)


def test_oracle_ranker_scores_one_and_a_uniform_random_ranker_k_over_candidates():
    rng = np.random.default_rng(0)
    candidates, visits = 200, 3000
    visit_targets = [sorted(rng.choice(candidates, size=rng.integers(1, 8), replace=False).tolist()) for _ in range(visits)]
    targets = targets_of(visit_targets)
    oracle, uniform = [], []
    for columns in visit_targets:
        scores = np.zeros(candidates)
        scores[columns] = 1.0
        oracle.append(target_ranks(scores, np.array(columns)))
        uniform.append(target_ranks(rng.random(candidates), np.array(columns)))
    ks = (1, 10, 20, 50)
    oracle_table = recall_table(targets, np.concatenate(oracle), ks=(1, 10, 20))
    assert oracle_table["recall"][10] == oracle_table["recall"][20] == 1.0
    assert oracle_table["accuracy_gram"][1] == 1.0 and oracle_table["recall"][1] < 1.0
    random_recall = recall_table(targets, np.concatenate(uniform), ks=ks)["recall"]
    for k in ks:
        expected = k / candidates
        # Per visit, recall@K is a mean of |Y| hypergeometric indicators: variance <= p(1-p).
        sigma = np.sqrt(expected * (1 - expected) / visits)
        assert abs(random_recall[k] - expected) < 4 * sigma, (k, random_recall[k], expected)


def test_bootstrap_interval_brackets_the_estimate_and_is_seeded():
    rng = np.random.default_rng(1)
    visit_targets = [[int(c)] for c in rng.integers(0, 50, size=400)]
    targets = targets_of(visit_targets, patient=[v // 4 for v in range(400)])
    ranks = rng.integers(0, 50, size=400)
    first = recall_table(targets, ranks, ks=(10,), bootstrap=500, seed=3)
    again = recall_table(targets, ranks, ks=(10,), bootstrap=500, seed=3)
    low, high = first["recall_ci"][10]
    assert low < first["recall"][10] < high and high - low < 0.2
    assert first == again


def test_breakdowns_select_their_targets():
    targets = targets_of([[10, 11], [12, 13]], rare=[True, False, False, True], repeat=[True, True, False, False])
    ranks = np.array([0, 30, 1, 40])
    parts = breakdowns(targets, ranks, ks=(10,))
    assert parts["rare"]["recall"][10] == pytest.approx(0.5) and parts["rare"]["targets"] == 2
    assert parts["common"]["recall"][10] == pytest.approx(0.5)
    assert parts["repeated"]["recall"][10] == pytest.approx(0.5) and parts["repeated"]["visits"] == 1
    assert parts["new"]["recall"][10] == pytest.approx(0.5)
    assert parts["chapters"]["E00-E89"]["targets"] == 4


def test_code_space_candidates_categories_and_chapters():
    codes = CodeSpace.from_tokens(TOKENS)
    assert codes.dx_codes == ("E119", "I10", "E1165", "J449", "N183")
    assert codes.categories == ("E11", "I10", "J44", "N18")
    assert codes.category_of.tolist() == [0, 1, 0, 2, 3]
    assert codes.chapter_of_category == ("E00-E89", "I00-I99", "J00-J99", "N00-N99")
    assert codes.unknown_dx_id == 5 and codes.column_of[9] == 1 and codes.column_of[13] == -1
    assert codes.bundle_code_mask.tolist() == [False] * 5 + [True, False, False] + [True] * 7
    assert codes.columns_matching(("E08", "E11")).tolist() == [0, 2]
    assert icd10_chapter("Z23") == "Z00-Z99" and icd10_chapter("not a code") == "other"
    assert token_type("DX:I10") == "DX I00-I99" and token_type("SEX:F") == "demographics"
    assert token_type("[END]") == "delimiters" and token_type("CPT:99213") == "CPT"


def visit(history: dict[int, tuple[int, int]]) -> Visit:
    return Visit(patient=0, split="test", document=0, number=1, context=np.zeros(1, dtype=np.int64), truncated=False,
                 bundles=1, targets=np.array([0]), unknown_targets=0, history=history)


def test_baselines_rank_as_documented():
    codes = CodeSpace.from_tokens(TOKENS)
    counts = population_counts(codes, {"DX:E119": 50, "DX:I10": 80, "DX:E1165": 5, "DX:J449": 20, "DX:N183": 20})
    frequency = PopulationFrequency(codes, counts)([visit({})])
    order = np.argsort([target_ranks(frequency.tokens[0], np.array([c]))[0] for c in range(5)])
    assert [codes.dx_codes[c] for c in order] == ["I10", "E119", "J449", "N183", "E1165"]  # ties by vocabulary order
    assert frequency.categories[0].tolist() == [55, 80, 20, 20]
    # History: N183 twice, E1165 once recently, J449 once earlier; then the population order.
    scores = History(codes, counts)([visit({4: (2, 0), 2: (1, 5), 3: (1, 3)})])
    ranks = [int(target_ranks(scores.tokens[0], np.array([c]))[0]) for c in range(5)]
    order = [codes.dx_codes[c] for c in np.argsort(ranks)]
    assert order == ["N183", "E1165", "J449", "I10", "E119"]
    category_ranks = [int(target_ranks(scores.categories[0], np.array([c]))[0]) for c in range(4)]
    assert np.argsort(category_ranks).tolist() == [3, 0, 2, 1]  # N18 (2), E11 (1, latest), J44 (1), I10
    assert population_counts(codes, None).tolist() == [5, 4, 3, 2, 1]


def test_endpoint_classification_and_threshold_choice():
    labels = np.array([True, True, False, False, True, False])
    predicted = np.array([True, False, True, False, True, False])
    result = classification(labels, predicted)
    assert result["precision"] == pytest.approx(2 / 3) and result["recall"] == pytest.approx(2 / 3)
    assert result["accuracy"] == pytest.approx(4 / 6) and result["balanced_accuracy"] == pytest.approx(2 / 3)
    assert result["f1"] == pytest.approx(2 / 3)
    rng = np.random.default_rng(0)
    labels = rng.random(400) < 0.3
    min_rank = np.where(labels, rng.integers(0, 15, 400), rng.integers(5, 200, 400)).astype(float)
    report = endpoint_report(labels, min_rank, np.arange(400) // 2, k_cls=(1, 5, 10, 20, 100), seed=0)
    assert report["chosen_k_cls"] in (10, 20) and report["test_at_chosen"]["balanced_accuracy"] > 0.8
    assert report["validation_visits"] + report["test_visits"] == 400
    assert parse_code_ranges("E08-E13") == ("E08", "E09", "E10", "E11", "E12", "E13")
    assert parse_code_ranges("I50, e11.9") == ("I50", "E119")
    with pytest.raises(ValueError):
        parse_code_ranges("E08-F10")
