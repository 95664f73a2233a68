"""The clinical model checked against the real code lists and resolved for the simulator.

`build_model()` expands code families from the package's ICD-10-CM list, turns keys into indices
and weights into cumulative tables, and refuses the whole catalogue, listing every problem at once,
if any code is absent from its list (ICD-10-CM, ICD-10-PCS), has no ICD-9-CM code in the reverse
GEM (the hospital could not code it), or any key, order or rate is inconsistent.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass

from sparseehr_mcore.synthetic.catalog_chronic import CONDITIONS, PROGRESSIONS
from sparseehr_mcore.synthetic.catalog_episodes import ENROLMENT_EPISODES, EPISODES
from sparseehr_mcore.synthetic.codelists import CodeLists, load_code_lists
from sparseehr_mcore.synthetic.icd9 import ReverseCoder
from sparseehr_mcore.synthetic.schema import (
    AGE_BANDS,
    REGIONS,
    CodeGroup,
    Condition,
    Episode,
    Procedure,
    Progression,
    Stay,
)


class CatalogError(ValueError):
    """The catalogue disagrees with the code lists or with itself; the message lists every problem."""


@dataclass(frozen=True, slots=True)
class Group:
    """A resolved `CodeGroup`: codes with cumulative probabilities."""

    codes: tuple[str, ...]
    cumulative: tuple[float, ...]
    per_visit: float
    carriers: float
    fixed: bool

    def draw(self, rng: random.Random) -> str:
        """One code by weight."""
        return self.codes[min(bisect.bisect_right(self.cumulative, rng.random()), len(self.codes) - 1)]


@dataclass(frozen=True, slots=True)
class ResolvedStay:
    diagnoses: tuple[Group, ...]
    procedures: tuple[Procedure, ...]
    nights: tuple[int, int]


@dataclass(frozen=True, slots=True)
class ResolvedCondition:
    """A `Condition` with indices for keys; `progression_only` if it has no prevalence or incidence."""

    index: int
    key: str
    prevalence: tuple[float, ...]
    incidence: float
    sex_rr: dict[str, float]
    region_rr: dict[str, float]
    risk_factors: tuple[tuple[int, float], ...]
    diagnoses: tuple[Group, ...]
    procedures: tuple[Procedure, ...]
    visits_per_year: float
    admissions_per_year: float
    stay: ResolvedStay | None
    replaces: frozenset[str]
    progression_only: bool
    progressions_in: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ResolvedProgression:
    index: int
    cause: int
    effects: tuple[int, ...]
    rate: float
    after_days: int
    risk_factors: tuple[tuple[int, float], ...]


@dataclass(frozen=True, slots=True)
class ResolvedEpisode:
    """An `Episode` with indices; `season` normalised to a mean of 1; `aftercare` maps A to D codes."""

    key: str
    rate: tuple[float, ...]
    season: tuple[float, ...] | None
    sex_rr: dict[str, float]
    region_rr: dict[str, float]
    risk_factors: tuple[tuple[int, float], ...]
    diagnoses: tuple[Group, ...]
    procedures: tuple[Procedure, ...]
    inpatient: float
    stay: ResolvedStay | None
    aftercare_visits: int
    aftercare: dict[str, str]
    leads_to: tuple[int, ...]


@dataclass(frozen=True)
class ClinicalModel:
    """Everything the simulator needs, checked.

    `enrolment`: (oldest age, episode) pairs; the first that fits codes the one visit of a patient
    whom nothing else brought in. `diagnosis_codes`/`procedure_codes`: every code it can emit.
    """

    conditions: tuple[ResolvedCondition, ...]
    progressions: tuple[ResolvedProgression, ...]
    episodes: tuple[ResolvedEpisode, ...]
    enrolment: tuple[tuple[int, ResolvedEpisode], ...]
    diagnosis_codes: tuple[str, ...]
    procedure_codes: tuple[str, ...]
    code_lists: CodeLists


class _Resolver:
    """Collects problems while resolving, so one run reports all of them."""

    def __init__(self, code_lists: CodeLists) -> None:
        self.lists = code_lists
        self.reverse = ReverseCoder(code_lists=code_lists)
        self.problems: list[str] = []
        self.diagnoses: set[str] = set()
        self.procedures: set[str] = set()
        self.condition_index: dict[str, int] = {}
        self._sorted_icd10cm = sorted(code_lists.icd10cm)

    def codes_under(self, prefix: str) -> list[str]:
        """ICD-10-CM codes starting with `prefix`, in code order."""
        start = bisect.bisect_left(self._sorted_icd10cm, prefix)
        end = bisect.bisect_left(self._sorted_icd10cm, prefix + "\x7f")
        return self._sorted_icd10cm[start:end]

    def check_diagnosis(self, code: str, where: str) -> bool:
        if code not in self.lists.icd10cm:
            self.problems.append(f"{where}: {code} is not in the ICD-10-CM code list")
            return False
        if self.reverse.choose(code).outcome == "unmapped":
            self.problems.append(f"{where}: {code} has no ICD-9-CM code in the reverse GEM")
            return False
        return True

    def group(self, group: CodeGroup, where: str) -> Group:
        weights: dict[str, float] = {}
        for code, weight in group.codes:
            if weight <= 0:
                self.problems.append(f"{where}: weight of {code} must be > 0")
            if self.check_diagnosis(code, where):
                weights[code] = weight
        for family in group.families:
            members = [
                code for code in self.codes_under(family.prefix)
                if code.endswith(family.suffix) and code not in weights
                and self.reverse.choose(code).outcome != "unmapped"
            ]  # fmt: skip
            if not members:
                self.problems.append(f"{where}: family {family.prefix}*{family.suffix} has no codes with an ICD-9 map")
            for code in members:
                weights[code] = family.weight / len(members)
        if not weights:
            return Group(("?",), (1.0,), group.per_visit, group.carriers, group.fixed)
        self.diagnoses.update(weights)
        total, running, cumulative = sum(weights.values()), 0.0, []
        for weight in weights.values():
            running += weight / total
            cumulative.append(running)
        return Group(tuple(weights), tuple(cumulative), group.per_visit, group.carriers, group.fixed)

    def procedures_of(self, procedures: tuple[Procedure, ...], where: str) -> tuple[Procedure, ...]:
        for procedure in procedures:
            if procedure.code not in self.lists.icd10pcs:
                self.problems.append(f"{where}: {procedure.code} is not in the ICD-10-PCS code list")
            if not 0 <= procedure.per_visit <= 1:
                self.problems.append(f"{where}: {procedure.code} per_visit must be in [0, 1]")
            self.procedures.add(procedure.code)
        return procedures

    def stay(self, stay: Stay | None, where: str, needed: bool) -> ResolvedStay | None:
        if stay is None:
            if needed:
                self.problems.append(f"{where}: admissions or an inpatient share need a stay")
            return None
        if not 1 <= stay.nights[0] <= stay.nights[1]:
            self.problems.append(f"{where}: stay nights must be 1 <= shortest <= longest")
        diagnoses = tuple(self.group(g, f"{where} stay") for g in stay.diagnoses)
        return ResolvedStay(diagnoses, self.procedures_of(stay.procedures, f"{where} stay"), stay.nights)

    def keys(self, pairs, where: str, *, before: int | None = None) -> tuple[tuple[int, float], ...]:
        resolved = []
        for key, relative_risk in pairs:
            index = self.condition_index.get(key)
            if index is None:
                self.problems.append(f"{where}: unknown condition {key!r}")
            elif before is not None and index >= before:
                self.problems.append(f"{where}: risk factor {key!r} must be declared before")
            else:
                resolved.append((index, relative_risk))
        return tuple(resolved)

    def rates(self, rates, where: str, *, sex_rr, region_rr) -> None:
        if len(rates) != len(AGE_BANDS) or any(rate < 0 for rate in rates):
            self.problems.append(f"{where}: needs {len(AGE_BANDS)} non-negative rates, one per age band")
        if any(rr < 0 for rr in sex_rr) or any(region not in REGIONS for region, _ in region_rr):
            self.problems.append(f"{where}: bad sex or region multipliers")


def _condition(resolver: _Resolver, index: int, condition: Condition, progressions_in) -> ResolvedCondition:
    where = f"condition {condition.key}"
    resolver.rates(condition.prevalence, where, sex_rr=(condition.female_rr, condition.male_rr),
                   region_rr=condition.region_rr)  # fmt: skip
    for code in condition.replaces:
        resolver.check_diagnosis(code, f"{where} replaces")
    if not condition.diagnoses or condition.diagnoses[0].carriers < 1:
        resolver.problems.append(f"{where}: the first code group is the principal one: every patient carries it")
    return ResolvedCondition(
        index=index, key=condition.key, prevalence=condition.prevalence, incidence=condition.incidence,
        sex_rr={"F": condition.female_rr, "M": condition.male_rr}, region_rr=dict(condition.region_rr),
        risk_factors=resolver.keys(condition.risk_factors, where, before=index),
        diagnoses=tuple(resolver.group(group, where) for group in condition.diagnoses),
        procedures=resolver.procedures_of(condition.procedures, where),
        visits_per_year=condition.visits_per_year, admissions_per_year=condition.admissions_per_year,
        stay=resolver.stay(condition.stay, where, condition.admissions_per_year > 0),
        replaces=frozenset(condition.replaces),
        progression_only=not any(condition.prevalence) and condition.incidence == 0,
        progressions_in=progressions_in,
    )  # fmt: skip


def _progression(resolver: _Resolver, index: int, progression: Progression) -> ResolvedProgression:
    where = f"progression {progression.cause} -> {'+'.join(progression.effects)}"
    cause = resolver.keys(((progression.cause, 1.0),), where)
    effects = resolver.keys(tuple((effect, 1.0) for effect in progression.effects), where)
    first_effect = min((effect for effect, _ in effects), default=0)
    if cause and effects and cause[0][0] >= first_effect:
        resolver.problems.append(f"{where}: the cause must be declared before its effects")
    if progression.after_years <= 0 or progression.rate <= 0:
        resolver.problems.append(f"{where}: after_years and rate must be > 0 (an effect follows its cause)")
    return ResolvedProgression(
        index=index, cause=cause[0][0] if cause else 0, effects=tuple(effect for effect, _ in effects),
        rate=progression.rate, after_days=round(progression.after_years * 365.25),
        risk_factors=resolver.keys(progression.risk_factors, where, before=first_effect),
    )  # fmt: skip


def _episode(resolver: _Resolver, episode: Episode, conditions) -> ResolvedEpisode:
    where = f"episode {episode.key}"
    resolver.rates(episode.rate, where, sex_rr=(episode.female_rr, episode.male_rr), region_rr=episode.region_rr)
    season = None
    if episode.season is not None:
        if len(episode.season) != 12 or sum(episode.season) <= 0 or min(episode.season) < 0:
            resolver.problems.append(f"{where}: season needs 12 non-negative monthly weights")
        else:
            mean = sum(episode.season) / 12
            season = tuple(weight / mean for weight in episode.season)
    diagnoses = tuple(resolver.group(group, where) for group in episode.diagnoses)
    stay = resolver.stay(episode.stay, where, episode.inpatient > 0)
    aftercare = {}
    if episode.aftercare_visits:
        for group in diagnoses + (stay.diagnoses if stay else ()):
            for code in group.codes:
                later = code[:-1] + "D"
                if code.endswith("A") and later in resolver.lists.icd10cm and resolver.check_diagnosis(later, where):
                    aftercare[code] = later
        if not aftercare:
            resolver.problems.append(f"{where}: aftercare visits but no code has a subsequent-encounter form")
        resolver.diagnoses.update(aftercare.values())
    leads_to = resolver.keys(tuple((key, 1.0) for key in episode.leads_to), where)
    for index, _ in leads_to:
        if not conditions[index].progression_only:
            resolver.problems.append(f"{where}: leads_to {conditions[index].key!r} must be progression-only")
    return ResolvedEpisode(
        key=episode.key, rate=episode.rate, season=season, sex_rr={"F": episode.female_rr, "M": episode.male_rr},
        region_rr=dict(episode.region_rr), risk_factors=resolver.keys(episode.risk_factors, where),
        diagnoses=diagnoses, procedures=resolver.procedures_of(episode.procedures, where),
        inpatient=episode.inpatient, stay=stay,
        aftercare_visits=episode.aftercare_visits, aftercare=aftercare,
        leads_to=tuple(index for index, _ in leads_to),
    )  # fmt: skip


def build_model(
    *,
    code_lists: CodeLists | None = None,
    conditions: tuple[Condition, ...] = CONDITIONS,
    progressions: tuple[Progression, ...] = PROGRESSIONS,
    episodes: tuple[Episode, ...] = EPISODES,
    enrolment: tuple[tuple[int, str], ...] = ENROLMENT_EPISODES,
) -> ClinicalModel:
    """Check and resolve a catalogue (the declared one by default) against the code lists.

    Raises:
        CatalogError: listing every code missing from its list and every inconsistency.
    """
    resolver = _Resolver(code_lists or load_code_lists())
    for collection, name in ((conditions, "condition"), (episodes, "episode")):
        keys = [item.key for item in collection]
        for key in sorted({key for key in keys if keys.count(key) > 1}):
            resolver.problems.append(f"{name} key {key!r} declared twice")
    resolver.condition_index = {condition.key: index for index, condition in enumerate(conditions)}
    resolved_progressions = tuple(_progression(resolver, i, p) for i, p in enumerate(progressions))
    incoming = {index: tuple(p.index for p in resolved_progressions if index in p.effects)
                for index in range(len(conditions))}  # fmt: skip
    resolved_conditions = tuple(_condition(resolver, i, c, incoming[i]) for i, c in enumerate(conditions))
    resolved_episodes = tuple(_episode(resolver, e, resolved_conditions) for e in episodes)
    episode_index = {episode.key: episode for episode in resolved_episodes}
    for _, key in enrolment:
        if key not in episode_index:
            resolver.problems.append(f"enrolment: unknown episode {key!r}")
    if resolver.problems:
        raise CatalogError("the clinical catalogue is inconsistent:\n  " + "\n  ".join(resolver.problems))
    return ClinicalModel(
        conditions=resolved_conditions,
        progressions=resolved_progressions,
        episodes=resolved_episodes,
        enrolment=tuple((max_age, episode_index[key]) for max_age, key in enrolment),
        diagnosis_codes=tuple(sorted(resolver.diagnoses)),
        procedure_codes=tuple(sorted(resolver.procedures)),
        code_lists=resolver.lists,
    )
