"""The clinical catalogue against the real code lists, and the ICD-10 -> ICD-9 choice rules."""

from __future__ import annotations

import pytest

from sparseehr_mcore.synthetic.catalog_chronic import CONDITIONS, PROGRESSIONS
from sparseehr_mcore.synthetic.catalog_episodes import EPISODES
from sparseehr_mcore.synthetic.codelists import load_code_lists
from sparseehr_mcore.synthetic.icd9 import ReverseCoder
from sparseehr_mcore.synthetic.model import CatalogError, build_model
from sparseehr_mcore.synthetic.schema import Condition, Progression, Stay, dx, px


@pytest.fixture(scope="module")
def code_lists():
    return load_code_lists()


def declared_codes() -> tuple[set[str], set[str]]:
    """Every code written in the catalogue by hand (families are expanded from the list itself)."""
    diagnoses, procedures = set(), set()

    def groups(items):
        for group in items:
            diagnoses.update(code for code, _ in group.codes)

    for item in CONDITIONS + EPISODES:
        groups(item.diagnoses)
        procedures.update(p.code for p in item.procedures)
        if item.stay is not None:
            groups(item.stay.diagnoses)
            procedures.update(p.code for p in item.stay.procedures)
        diagnoses.update(getattr(item, "replaces", ()))
    return diagnoses, procedures


def test_every_declared_code_is_in_the_package_code_lists(code_lists):
    diagnoses, procedures = declared_codes()
    assert len(diagnoses) > 250 and len(procedures) > 50
    assert sorted(diagnoses - set(code_lists.icd10cm)) == []
    assert sorted(procedures - set(code_lists.icd10pcs)) == []
    reverse = ReverseCoder(code_lists=code_lists)
    assert [code for code in sorted(diagnoses) if reverse.choose(code).outcome == "unmapped"] == []


def test_resolved_model_emits_only_listed_codes_with_an_icd9_map(code_lists):
    model = build_model()
    assert set(model.diagnosis_codes) <= set(code_lists.icd10cm)
    assert set(model.procedure_codes) <= set(code_lists.icd10pcs)
    reverse = ReverseCoder(code_lists=code_lists)
    assert all(reverse.choose(code).outcome != "unmapped" for code in model.diagnosis_codes)
    assert len(model.diagnosis_codes) >= 1000  # families give the long tail


def test_catalogue_problems_are_all_reported_at_once():
    bad = Condition(
        key="bad", label="made up", prevalence=(0.1,) * 5, diagnoses=(dx({"E99999": 1.0, "U071": 1.0}),),
        procedures=(px("ZZZZZZZ", 0.5),), risk_factors=(("nowhere", 2.0),), admissions_per_year=0.1,
    )  # fmt: skip
    effect = Condition(key="effect", label="effect", prevalence=(0.0,) * 5, diagnoses=(dx("I10"),),
                       stay=Stay(diagnoses=(dx("I10"),)))  # fmt: skip
    with pytest.raises(CatalogError) as raised:
        build_model(conditions=(effect, bad), progressions=(Progression("bad", ("effect",), rate=0.1, after_years=0),),
                    episodes=(), enrolment=())  # fmt: skip
    message = str(raised.value)
    for expected in ("E99999 is not in the ICD-10-CM code list", "U071 has no ICD-9-CM code in the reverse GEM",
                     "ZZZZZZZ is not in the ICD-10-PCS code list", "unknown condition 'nowhere'",
                     "admissions or an inpatient share need a stay", "the cause must be declared before its effects",
                     "after_years and rate must be > 0"):  # fmt: skip
        assert expected in message


@pytest.mark.parametrize(
    ("code", "outcome", "targets"),
    [
        ("I10", "approximate", ("4019",)),  # 401.0/401.1/401.9 all lead back: the last, "unspecified"
        ("E1122", "approximate", ("25040",)),
        ("N1830", "parent", ("5853",)),  # N18.30 (2021) is newer than the GEM: through N18.3
        ("A021", "combination", ("0031", "99591")),  # one ICD-9 code per choice list
        ("U071", "unmapped", ()),  # COVID-19 (2020): nothing at any level; the catalogue cannot use it
    ],
)
def test_icd9_choice_rules(code_lists, code, outcome, targets):
    choice = ReverseCoder(code_lists=code_lists).choose(code)
    assert (choice.outcome, choice.targets) == (outcome, targets)


def test_progressions_reference_declared_conditions_in_causal_order():
    order = {condition.key: index for index, condition in enumerate(CONDITIONS)}
    for progression in PROGRESSIONS:
        assert all(order[progression.cause] < order[effect] for effect in progression.effects)
