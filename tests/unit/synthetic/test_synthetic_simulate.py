"""What the simulator draws: declared prevalence, comorbidity, progression order, replaced codes."""

from __future__ import annotations

import math
from collections import defaultdict

import pytest

from sparseehr_mcore.synthetic.catalog_chronic import CONDITIONS
from sparseehr_mcore.synthetic.model import build_model
from sparseehr_mcore.synthetic.profiles import CLAIMS
from sparseehr_mcore.synthetic.schema import AGE_BANDS, age_band
from sparseehr_mcore.synthetic.simulate import INPATIENT, Simulator

PATIENTS = 2000


@pytest.fixture(scope="module")
def model():
    return build_model()


@pytest.fixture(scope="module")
def claims(model):
    simulator = Simulator(model=model, profile=CLAIMS, seed=7)
    return [simulator.patient(number) for number in range(PATIENTS)]


def baseline(model, patients, key):
    index = next(c.index for c in model.conditions if c.key == key)
    return [patient.onsets.get(index, (None, ""))[1] == "baseline" for patient in patients]


def test_prevalence_at_enrolment_is_the_declared_rate(model, claims):
    # allergic rhinitis: no sex, region or risk-factor multiplier, so the declared rate is the rate.
    declared = next(c for c in CONDITIONS if c.key == "allergic_rhinitis").prevalence
    has = baseline(model, claims, "allergic_rhinitis")
    by_band = defaultdict(list)
    for patient, present in zip(claims, has):
        by_band[age_band(patient.age)].append(present)
    for band, flags in sorted(by_band.items()):
        rate, n = declared[band], len(flags)
        assert n > 50, AGE_BANDS[band]
        tolerance = 4 * math.sqrt(rate * (1 - rate) / n)  # four binomial standard errors
        assert abs(sum(flags) / n - rate) < tolerance, (AGE_BANDS[band], sum(flags) / n, rate)


def test_sex_and_comorbidity_multipliers_show(model, claims):
    thyroid = baseline(model, claims, "hypothyroidism")
    women = [t for p, t in zip(claims, thyroid) if p.sex == "F" and p.age >= 40]
    men = [t for p, t in zip(claims, thyroid) if p.sex == "M" and p.age >= 40]
    assert sum(women) / len(women) > 2 * sum(men) / len(men)  # declared female_rr 4
    obese, diabetic = baseline(model, claims, "obesity"), baseline(model, claims, "type2_diabetes")
    adults = [i for i, p in enumerate(claims) if p.age >= 40]
    with_obesity = [diabetic[i] for i in adults if obese[i]]
    without = [diabetic[i] for i in adults if not obese[i]]
    assert sum(with_obesity) / len(with_obesity) > 1.5 * sum(without) / len(without)  # declared rr 2.5


def first_dates(patient) -> dict[str, int]:
    first: dict[str, int] = {}
    for visit in patient.visits:
        for code in visit.diagnoses:
            first[code] = min(first.get(code, visit.end), visit.end)
    return first


def test_a_progressed_code_never_precedes_its_cause(model, claims):
    """Every code of a progression-only condition (emitted by nothing else) comes after a cause code."""
    emitters: dict[str, set[str]] = defaultdict(set)
    codes_of: dict[str, set[str]] = defaultdict(set)
    for item in model.conditions + model.episodes:
        groups = item.diagnoses + (item.stay.diagnoses if item.stay else ())
        for group in groups:
            codes_of[item.key].update(group.codes)
            for code in group.codes:
                emitters[code].add(item.key)
    causes: dict[str, set[str]] = defaultdict(set)
    for progression in model.progressions:
        for effect in progression.effects:
            causes[model.conditions[effect].key].add(model.conditions[progression.cause].key)
    for episode in model.episodes:
        for index in episode.leads_to:
            causes[model.conditions[index].key].add(episode.key)
    checked = 0
    for condition in model.conditions:
        if not condition.progression_only:
            continue
        own = {code for code in codes_of[condition.key] if emitters[code] == {condition.key}}
        cause_codes = set().union(*(codes_of[key] for key in causes[condition.key]))
        for patient in claims:
            first = first_dates(patient)
            effect_days = [first[code] for code in own if code in first]
            if effect_days:
                cause_days = [first[code] for code in cause_codes if code in first]
                assert cause_days and min(cause_days) < min(effect_days), (patient.patient_id, condition.key)
                checked += 1
    assert checked > 100


def test_a_complication_code_replaces_the_uncomplicated_one(model, claims):
    seen = 0
    for patient in claims:
        first = first_dates(patient)
        if "E1122" not in first:
            continue
        seen += 1
        assert "E119" in first and first["E119"] < first["E1122"]
        assert all("E119" not in visit.diagnoses for visit in patient.visits if visit.end >= first["E1122"])
    assert seen > 10


def test_visits_are_ordered_and_stays_hold_several_days(claims):
    stays = 0
    for patient in claims:
        assert patient.visits, patient.patient_id
        starts = [visit.start for visit in patient.visits]
        assert starts == sorted(starts)
        for earlier, later in zip(patient.visits, patient.visits[1:]):
            assert earlier.end < later.start  # one visit per day, stays never overlap another visit
        for visit in patient.visits:
            assert patient.enrol_start <= visit.start <= visit.end <= patient.enrol_end
            assert all(visit.start <= day <= visit.end for day, _ in visit.procedures)
            stays += visit.setting == INPATIENT and visit.end > visit.start
    assert stays > 50
