"""The vocabulary of the clinical model: what a condition, a progression, an episode and a population are.

The model itself is data (`catalog_chronic.py`, `catalog_episodes.py`, `profiles.py`) written in
these types; `model.py` checks it against the real code lists and resolves it for the simulator.

Rates are per age band (`AGE_BANDS`) for the reference rates of both sexes; a sex multiplies them
by `female_rr` or `male_rr` (0 for a condition one sex cannot have), a region by its `region_rr`,
and every active risk factor by its relative risk. Probabilities are capped at `MAX_PROBABILITY`.
"""

from __future__ import annotations

from dataclasses import dataclass

# Age bands (inclusive years) of every rate tuple.
AGE_BANDS = ((0, 17), (18, 39), (40, 64), (65, 79), (80, 95))
AGE_BAND_LABELS = ("0-17", "18-39", "40-64", "65-79", "80+")
REGIONS = ("NE", "MW", "S", "W")  # US census regions
MAX_PROBABILITY = 0.95

Rates = tuple[float, float, float, float, float]  # one value per AGE_BANDS entry


def age_band(age: int) -> int:
    """Index of the age band holding `age` (ages past the last band stay in it)."""
    for index, (_, high) in enumerate(AGE_BANDS):
        if age <= high:
            return index
    return len(AGE_BANDS) - 1


@dataclass(frozen=True)
class Family:
    """Every code of the ICD-10-CM list under `prefix` (ending with `suffix`), sharing `weight`.

    Families give the long tail of real coding (hundreds of injury sites, infection organisms)
    without listing each code by hand; they are expanded from the package list at load time and an
    empty family is an error.
    """

    prefix: str
    weight: float
    suffix: str = ""


@dataclass(frozen=True)
class CodeGroup:
    """One aspect of a condition (its principal code, a stage, a status code); one code per visit.

    Attributes:
        codes: (ICD-10-CM code, weight) pairs.
        families: code families sharing further weight.
        per_visit: probability the aspect is coded at a visit for its condition.
        carriers: share of the patients with the condition who have this aspect at all (drawn once,
            at onset: e.g. only some diabetics take insulin).
        fixed: the patient keeps one code, drawn at onset (a knee's laterality, an asthma's type),
            instead of a fresh draw at every visit.
    """

    codes: tuple[tuple[str, float], ...] = ()
    families: tuple[Family, ...] = ()
    per_visit: float = 1.0
    carriers: float = 1.0
    fixed: bool = False


@dataclass(frozen=True)
class Procedure:
    """An ICD-10-PCS procedure done at a visit with probability `per_visit`."""

    code: str
    per_visit: float


@dataclass(frozen=True)
class Stay:
    """An inpatient stay: principal diagnoses (dated at discharge), procedures on in-stay days.

    Attributes:
        diagnoses: the reasons for the stay; the patient's other active conditions are added as
            secondary diagnoses.
        procedures: each done on one day of the stay with its probability.
        nights: (shortest, longest) length of stay in nights, drawn uniformly.
    """

    diagnoses: tuple[CodeGroup, ...]
    procedures: tuple[Procedure, ...] = ()
    nights: tuple[int, int] = (1, 5)


@dataclass(frozen=True)
class Condition:
    """A chronic condition: who has it, how it is coded and how it brings patients to care.

    Attributes:
        key: identifier used by risk factors and progressions.
        label: plain name.
        prevalence: probability of having it at enrolment, per age band (before sex, region and
            risk-factor multipliers). All zero for a condition that only arises by progression.
        incidence: annual hazard of onset during follow-up, as a multiple of the prevalence of the
            patient's current age band (0: no new onsets except by progression).
        female_rr, male_rr: multipliers by sex.
        region_rr: (region, multiplier) pairs; other regions 1.
        risk_factors: (condition key, relative risk) pairs: comorbidity. Keys must be declared
            earlier in the catalogue (conditions are drawn in order).
        diagnoses: code groups coded at the condition's visits.
        procedures: outpatient follow-up procedures at its visits.
        visits_per_year: mean outpatient follow-up visits for it (Poisson).
        admissions_per_year: mean inpatient stays for it (Poisson), each described by `stay`.
        stay: the stay of an admission (required when `admissions_per_year` > 0).
        replaces: ICD-10-CM codes no longer coded once this condition is active (ICD-10 codes a
            complication instead of "without complications": E11.22 replaces E11.9).
    """

    key: str
    label: str
    prevalence: Rates
    diagnoses: tuple[CodeGroup, ...]
    incidence: float = 0.0
    female_rr: float = 1.0
    male_rr: float = 1.0
    region_rr: tuple[tuple[str, float], ...] = ()
    risk_factors: tuple[tuple[str, float], ...] = ()
    procedures: tuple[Procedure, ...] = ()
    visits_per_year: float = 2.0
    admissions_per_year: float = 0.0
    stay: Stay | None = None
    replaces: tuple[str, ...] = ()


@dataclass(frozen=True)
class Progression:
    """A cause condition leading to effect conditions: onset `after_years` + Exp(rate) after the cause's.

    Attributes:
        cause: condition key.
        effects: condition keys that start together (diabetic kidney disease brings a CKD stage).
        rate: annual hazard once `after_years` have passed.
        after_years: no progression earlier than this after the cause's onset (> 0, so an effect is
            always coded after its cause).
        risk_factors: (condition key, relative risk) pairs multiplying `rate`.
    """

    cause: str
    effects: tuple[str, ...]
    rate: float
    after_years: float = 1.0
    risk_factors: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Episode:
    """An acute problem or a preventive encounter: a visit (or a stay) that comes and goes.

    Attributes:
        key, label: identifier and plain name.
        rate: episodes per person-year, per age band.
        diagnoses: code groups coded at the episode.
        procedures: procedures at its outpatient visit.
        season: 12 relative monthly intensities (January first; normalised to a mean of 1), or
            None for all year.
        female_rr, male_rr, region_rr, risk_factors: as for `Condition`.
        inpatient: probability that an episode is an inpatient stay (`stay`) rather than a visit.
        stay: the stay of an inpatient episode.
        aftercare_visits: outpatient follow-ups within six weeks, coded with the injury codes'
            subsequent-encounter form (7th character D instead of A) where the list has it.
        leads_to: progression-only conditions that start when the episode ends (a myocardial
            infarction leaves I25.2 "old myocardial infarction" on later visits).
    """

    key: str
    label: str
    rate: Rates
    diagnoses: tuple[CodeGroup, ...]
    procedures: tuple[Procedure, ...] = ()
    season: tuple[float, ...] | None = None
    female_rr: float = 1.0
    male_rr: float = 1.0
    region_rr: tuple[tuple[str, float], ...] = ()
    risk_factors: tuple[tuple[str, float], ...] = ()
    inpatient: float = 0.0
    stay: Stay | None = None
    aftercare_visits: int = 0
    leads_to: tuple[str, ...] = ()


@dataclass(frozen=True)
class PopulationProfile:
    """Who a data holder sees and how: the population, the coding and the case mix.

    Attributes:
        name: `claims` or `hospital`; part of every patient's random stream.
        coding: `icd10` or `icd9` for diagnoses (procedures are always ICD-10-PCS).
        id_prefix: patient ids are this plus a number, so cohorts never share an id.
        age_weights: share of patients per age band at enrolment.
        female_share: share of women.
        region_weights: (region, weight) pairs.
        start_year, years: the calendar window (default; the command line can change it).
        follow_up_years: (shortest, longest) enrolment, drawn uniformly and cut at the window's end.
        outpatient_scale: multiplies chronic follow-up visit rates.
        episode_scale: multiplies acute and preventive episode rates.
        admission_scale: multiplies chronic admission rates and the inpatient share of episodes.
        comorbidity_coding: probability that another active chronic condition is coded at an
            outpatient visit (at a stay, every active condition is coded).
    """

    name: str
    coding: str
    id_prefix: str
    age_weights: Rates
    female_share: float
    region_weights: tuple[tuple[str, float], ...]
    start_year: int
    years: int
    follow_up_years: tuple[float, float]
    outpatient_scale: float = 1.0
    episode_scale: float = 1.0
    admission_scale: float = 1.0
    comorbidity_coding: float = 0.35


def dx(
    weights: dict[str, float] | str,
    *,
    families: tuple[Family, ...] = (),
    per_visit: float = 1.0,
    carriers: float = 1.0,
    fixed: bool = False,
) -> CodeGroup:
    """A `CodeGroup` from `{code: weight}` (or one code), as the catalogues write them."""
    pairs = ((weights, 1.0),) if isinstance(weights, str) else tuple(weights.items())
    return CodeGroup(codes=pairs, families=families, per_visit=per_visit, carriers=carriers, fixed=fixed)


def px(code: str, per_visit: float) -> Procedure:
    """A `Procedure`, as the catalogues write them."""
    return Procedure(code=code, per_visit=per_visit)
