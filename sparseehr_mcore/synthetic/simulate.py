"""One synthetic patient from the clinical model: demographics, condition onsets, then visits.

Each patient has its own random stream, seeded by (seed, profile, patient number): a patient is
the same whatever the cohort size, and the whole cohort is a function of (seed, size, profile)
alone. Days are proleptic ordinals (`date.toordinal()`), so no time zone or clock is involved.

Order of drawing (docs/synthetic.md):

1. sex, age at enrolment, region, the enrolment window;
2. chronic conditions in catalogue order: present at enrolment (prevalence), new during follow-up
   (yearly incidence), or reached by a progression from an earlier condition, whichever is first;
   every multiplier counts only the risk factors already active at that time;
3. episodes by thinning a seasonal Poisson process; some are inpatient stays;
4. each condition's diagnosing visit at its onset (the enrolment visit for those present then),
   Poisson follow-up visits and admissions;
5. stays that overlap are merged into one; outpatient visits inside a stay are dropped; all
   outpatient requests of one day form one visit. Diagnoses of a stay are dated at discharge (as
   MIMIC's are: coded from the discharge summary), its procedures on their in-stay days.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import random
from dataclasses import dataclass, field

from sparseehr_mcore.synthetic.model import ClinicalModel, Group, ResolvedStay
from sparseehr_mcore.synthetic.schema import AGE_BANDS, MAX_PROBABILITY, PopulationProfile

DAYS_PER_YEAR = 365.25
OUTPATIENT, INPATIENT = "outpatient", "inpatient"


@dataclass
class Visit:
    """One encounter: an outpatient day or an inpatient stay, with its codes.

    Attributes:
        setting: `outpatient` or `inpatient`.
        start, end: first and last day (equal for an outpatient visit).
        diagnoses: ICD-10-CM codes (dated at `end`).
        procedures: (day, ICD-10-PCS code) pairs.
        conditions: indices of the conditions coded at it (so comorbidity coding adds only others).
    """

    setting: str
    start: int
    end: int
    diagnoses: set[str] = field(default_factory=set)
    procedures: set[tuple[int, str]] = field(default_factory=set)
    conditions: set[int] = field(default_factory=set)


@dataclass
class SimulatedPatient:
    """A patient as drawn: attributes, condition onsets (index -> (day, origin)) and visits in order.

    `age` is the age at enrolment, in whole years."""

    patient_id: str
    sex: str
    age: int
    birth_year: int
    region: str
    enrol_start: int
    enrol_end: int
    onsets: dict[int, tuple[int, str]]
    visits: list[Visit]


def _cumulative(weights) -> list[float]:
    total, running, out = sum(weights), 0.0, []
    for weight in weights:
        running += weight / total
        out.append(running)
    return out


def _pick(rng: random.Random, cumulative: list[float]) -> int:
    return min(bisect.bisect_right(cumulative, rng.random()), len(cumulative) - 1)


class Simulator:
    """Draws patients of one profile from one seed.

    Args:
        model: the resolved clinical model.
        profile: the population and case mix.
        seed: the cohort seed.
        start_year, years: the calendar window (default: the profile's).
    """

    def __init__(self, *, model: ClinicalModel, profile: PopulationProfile, seed: int,
                 start_year: int | None = None, years: int | None = None) -> None:  # fmt: skip
        self.model = model
        self.profile = profile
        self.seed = seed
        start_year = profile.start_year if start_year is None else start_year
        years = profile.years if years is None else years
        self.window = (dt.date(start_year, 1, 1).toordinal(), dt.date(start_year + years - 1, 12, 31).toordinal())
        self._age_cumulative = _cumulative(profile.age_weights)
        self._regions = [region for region, _ in profile.region_weights]
        self._region_cumulative = _cumulative([weight for _, weight in profile.region_weights])
        self._months: dict[int, int] = {}
        self._replacing = tuple(condition.index for condition in model.conditions if condition.replaces)

    # --- helpers -----------------------------------------------------------------------------
    def _month(self, day: int) -> int:
        month = self._months.get(day)
        if month is None:
            month = self._months[day] = dt.date.fromordinal(day).month
        return month

    @staticmethod
    def _risk(risk_factors, onsets, day: int) -> float:
        multiplier = 1.0
        for index, relative_risk in risk_factors:
            onset = onsets.get(index)
            if onset is not None and onset[0] <= day:
                multiplier *= relative_risk
        return multiplier

    def _rate(self, person: _Person, rates, sex_rr, region_rr, day: int) -> float:
        return rates[person.band(day)] * sex_rr[person.sex] * region_rr.get(person.region, 1.0)

    def _replaced(self, onsets, day: int) -> frozenset[str]:
        """Codes no longer written on `day` because a complication replaced them."""
        replaced = frozenset()
        for index in self._replacing:
            onset = onsets.get(index)
            if onset is not None and onset[0] <= day:
                replaced |= self.model.conditions[index].replaces
        return replaced

    # --- the patient ---------------------------------------------------------------------------
    def patient(self, number: int) -> SimulatedPatient:
        """Patient `number` (0-based) of the cohort."""
        profile = self.profile
        rng = random.Random(f"sparseehr-synthetic:{self.seed}:{profile.name}:{number}")
        sex = "F" if rng.random() < profile.female_share else "M"
        low, high = AGE_BANDS[_pick(rng, self._age_cumulative)]
        age = rng.randint(low, high)
        region = self._regions[_pick(rng, self._region_cumulative)]
        span = self.window[1] - self.window[0]
        length = min(span, round(rng.uniform(*profile.follow_up_years) * DAYS_PER_YEAR))
        start = self.window[0] + rng.randint(0, span - length)
        # A birthday anywhere in the year, kept off the edges so the age at enrolment is `age` exactly.
        birth_day = start - math.ceil((age + rng.uniform(0.01, 0.99)) * DAYS_PER_YEAR)
        birth_year = dt.date.fromordinal(birth_day).year
        person = _Person(rng, sex, region, birth_day, start, start + length)

        onsets = self._onsets(person)
        stay_requests: list = []
        visit_requests: list = []
        traces = self._episodes(person, onsets, stay_requests, visit_requests)
        for index in sorted(onsets):
            self._condition_care(person, index, onsets[index][0], stay_requests, visit_requests)
        stays = self._build_stays(person, onsets, stay_requests, visit_requests)
        # Conditions an episode leaves behind (an old infarction) begin after it, with a visit.
        for day, leads_to in sorted(traces + [(stay.end, left) for stay, left in stays if left]):
            for index in leads_to:
                onset = day + rng.randint(7, 30)
                if index not in onsets and onset <= person.end:
                    onsets[index] = (onset, "episode")
                    self._condition_care(person, index, onset, [], visit_requests)
        visits = self._build_visits(person, onsets, [stay for stay, _ in stays], visit_requests)
        if not visits:  # nothing brought the patient in: the enrolment visit alone
            visits = [self._enrolment_visit(person)]
        return SimulatedPatient(
            patient_id=f"{profile.id_prefix}{number:07d}", sex=sex, age=age, birth_year=birth_year, region=region,
            enrol_start=person.start, enrol_end=person.end, onsets=onsets, visits=visits,
        )  # fmt: skip

    def _onsets(self, person: _Person) -> dict[int, tuple[int, str]]:
        """Condition index -> (onset day, origin) for every condition the patient has by the end."""
        rng, onsets, drawn = person.rng, {}, {}
        progressions = self.model.progressions
        for condition in self.model.conditions:
            candidates = []
            if not condition.progression_only:
                base = self._rate(person, condition.prevalence, condition.sex_rr, condition.region_rr, person.start)
                risk = self._risk(condition.risk_factors, onsets, person.start)
                if rng.random() < min(MAX_PROBABILITY, base * risk):
                    candidates.append((person.start, "baseline"))
                elif condition.incidence > 0:
                    onset = self._incident(person, condition, onsets)
                    if onset is not None:
                        candidates.append((onset, "incident"))
            for index in condition.progressions_in:
                if index not in drawn:  # the effects of one progression start together
                    drawn[index] = self._progress(person, progressions[index], onsets)
                if drawn[index] is not None:
                    candidates.append((drawn[index], "progression"))
            if candidates:
                onsets[condition.index] = min(candidates)
        return onsets

    def _incident(self, person: _Person, condition, onsets) -> int | None:
        """First onset during follow-up, one year at a time (the age band and risk factors of that year)."""
        day = person.start
        while day < person.end:
            step = min(365, person.end - day)
            base = self._rate(person, condition.prevalence, condition.sex_rr, condition.region_rr, day)
            hazard = condition.incidence * base * self._risk(condition.risk_factors, onsets, day) * step / 365
            if person.rng.random() < min(MAX_PROBABILITY, hazard):
                return day + 1 + person.rng.randrange(step)
            day += step
        return None

    def _progress(self, person: _Person, progression, onsets) -> int | None:
        cause = onsets.get(progression.cause)
        if cause is None:
            return None
        start = cause[0] + progression.after_days
        rate = progression.rate * self._risk(progression.risk_factors, onsets, start)
        day = start + round(person.rng.expovariate(rate) * DAYS_PER_YEAR)
        return day if day <= person.end else None

    def _episodes(self, person: _Person, onsets, stays: list, visits: list) -> list:
        """Episodes by thinning a Poisson process at its peak rate; returns outpatient traces (day, leads_to)."""
        rng, profile, traces = person.rng, self.profile, []
        for episode in self.model.episodes:
            sex_region = episode.sex_rr[person.sex] * episode.region_rr.get(person.region, 1.0)
            peak = max(episode.rate) * sex_region * profile.episode_scale
            peak *= self._risk(episode.risk_factors, onsets, person.end)  # every risk factor it will have
            peak *= max(episode.season) if episode.season else 1.0
            if peak <= 0:
                continue
            inpatient = episode.inpatient
            if inpatient < 1:
                inpatient = min(MAX_PROBABILITY, inpatient * profile.admission_scale)
            day = float(person.start)
            while True:
                day += rng.expovariate(peak) * DAYS_PER_YEAR
                if day > person.end:
                    break
                today = int(day)
                rate = self._rate(person, episode.rate, episode.sex_rr, episode.region_rr, today)
                rate *= profile.episode_scale * self._risk(episode.risk_factors, onsets, today)
                if episode.season:
                    rate *= episode.season[self._month(today) - 1]
                if rng.random() >= rate / peak:
                    continue
                if episode.stay is not None and rng.random() < inpatient:
                    stays.append((today, episode.stay, episode))
                    continue
                visit = Visit(OUTPATIENT, today, today)
                self._code_groups(rng, visit, episode.diagnoses)
                for procedure in episode.procedures:
                    if rng.random() < procedure.per_visit:
                        visit.procedures.add((today, procedure.code))
                visits.append((today, "coded", visit))
                self._aftercare(rng, episode, visit, visits)
                if episode.leads_to:
                    traces.append((today, episode.leads_to))
        return traces

    @staticmethod
    def _code_groups(rng: random.Random, visit: Visit, groups: tuple[Group, ...]) -> None:
        for group in groups:
            if rng.random() < group.per_visit:
                visit.diagnoses.add(group.draw(rng))

    @staticmethod
    def _aftercare(rng: random.Random, episode, visit: Visit, visits: list) -> None:
        """Follow-up visits of an injury, coded with the subsequent-encounter form of its codes."""
        later = {episode.aftercare[code] for code in visit.diagnoses if code in episode.aftercare}
        for follow_up in range(episode.aftercare_visits if later else 0):
            day = visit.end + rng.randint(7, 21) + 21 * follow_up
            visits.append((day, "coded", Visit(OUTPATIENT, day, day, diagnoses=set(later))))

    def _condition_care(self, person: _Person, index: int, onset: int, stays: list, visits: list) -> None:
        """A condition's diagnosing visit at onset, then Poisson follow-up visits and admissions."""
        rng, profile = person.rng, self.profile
        condition = self.model.conditions[index]
        visits.append((onset, "diagnosis", index))
        rate = condition.visits_per_year * profile.outpatient_scale
        day = onset + rng.expovariate(rate) * DAYS_PER_YEAR if rate > 0 else person.end + 1
        while day <= person.end:
            visits.append((int(day), "condition", index))
            day += rng.expovariate(rate) * DAYS_PER_YEAR
        rate = condition.admissions_per_year * profile.admission_scale
        day = onset + rng.expovariate(rate) * DAYS_PER_YEAR if rate > 0 else person.end + 1
        while day <= person.end:
            stays.append((int(day), condition.stay, None))
            day += rng.expovariate(rate) * DAYS_PER_YEAR

    def _build_stays(self, person: _Person, onsets, requests: list, visits: list) -> list[tuple[Visit, tuple]]:
        """Stays in order, overlapping ones merged, each with the conditions its episodes leave behind."""
        rng, stays = person.rng, []
        for day, spec, episode in sorted(requests, key=lambda request: request[0]):
            end = min(person.end, day + rng.randint(*spec.nights))
            if stays and day <= stays[-1][0].end:
                stay, leads_to = stays.pop()
                stay.end = max(stay.end, end)
            else:
                stay, leads_to = Visit(INPATIENT, day, end), ()
            self._code_stay(person, stay, spec, onsets, day)
            if episode is not None:
                leads_to += episode.leads_to
                if episode.aftercare_visits:
                    self._aftercare(rng, episode, stay, visits)
            stays.append((stay, leads_to))
        return stays

    def _code_stay(self, person: _Person, stay: Visit, spec: ResolvedStay, onsets, day: int) -> None:
        rng = person.rng
        self._code_groups(rng, stay, spec.diagnoses)
        for procedure in spec.procedures:
            if rng.random() < procedure.per_visit:
                stay.procedures.add((rng.randint(day, stay.end), procedure.code))
        replaced = self._replaced(onsets, day)
        for index in sorted(onsets):  # every active condition is a secondary diagnosis of a stay
            if onsets[index][0] <= day:
                self._code_condition(person, stay, index, replaced, procedures=False)

    def _code_condition(
        self, person: _Person, visit: Visit, index: int, replaced: frozenset[str], *, procedures: bool,
        diagnosing: bool = False,
    ) -> None:
        """Code a condition at a visit: its carried aspects (fixed or drawn codes), its procedures.

        At the diagnosing visit the principal group (the first, carried by all) is always coded."""
        rng = person.rng
        condition = self.model.conditions[index]
        for number, group in enumerate(condition.diagnoses):
            code = person.aspect(index, number, group)
            if code is None or (rng.random() >= group.per_visit and not (diagnosing and number == 0)):
                continue
            code = code or group.draw(rng)
            if code not in replaced:
                visit.diagnoses.add(code)
        if procedures:
            for procedure in condition.procedures:
                if rng.random() < procedure.per_visit:
                    visit.procedures.add((visit.start, procedure.code))
        visit.conditions.add(index)

    def _build_visits(self, person: _Person, onsets, stays: list[Visit], requests: list) -> list[Visit]:
        """Outpatient requests grouped by day (outside stays, inside enrolment), plus the stays, in order."""
        rng = person.rng
        stay_starts = [stay.start for stay in stays]
        by_day: dict[int, Visit] = {}
        requests = sorted(requests, key=lambda request: request[0])
        for position, (day, kind, payload) in enumerate(requests):  # a diagnosis due in hospital waits for discharge
            stay = bisect.bisect_right(stay_starts, day) - 1
            if kind == "diagnosis" and stay >= 0 and day <= stays[stay].end:
                requests[position] = (stays[stay].end + 1, kind, payload)
        for day, kind, payload in sorted(requests, key=lambda request: request[0]):
            stay = bisect.bisect_right(stay_starts, day) - 1
            if day < person.start or day > person.end or (stay >= 0 and day <= stays[stay].end):
                continue  # outside enrolment, or in hospital that day
            visit = by_day.get(day)
            if visit is None:
                visit = by_day[day] = Visit(OUTPATIENT, day, day)
            if kind == "coded":
                visit.diagnoses |= payload.diagnoses
                visit.procedures |= payload.procedures
            else:
                self._code_condition(person, visit, payload, self._replaced(onsets, day), procedures=True,
                                     diagnosing=kind == "diagnosis")
        comorbidity = self.profile.comorbidity_coding
        for day, visit in by_day.items():  # other active conditions are coded on part of the visits
            replaced = self._replaced(onsets, day)
            for index in sorted(onsets):
                if onsets[index][0] <= day and index not in visit.conditions and rng.random() < comorbidity:
                    self._code_condition(person, visit, index, replaced, procedures=False)
        visits = [visit for visit in by_day.values() if visit.diagnoses or visit.procedures] + stays
        visits.sort(key=lambda visit: visit.start)
        return visits

    def _enrolment_visit(self, person: _Person) -> Visit:
        visit = Visit(OUTPATIENT, person.start, person.start)
        for max_age, episode in self.model.enrolment:
            if person.age(person.start) <= max_age:
                self._code_groups(person.rng, visit, episode.diagnoses[:1])
                break
        return visit


class _Person:
    """The state of one patient while drawn: its random stream, attributes and per-condition aspects."""

    __slots__ = ("rng", "sex", "region", "birth_day", "start", "end", "_aspects", "_band_starts")

    def __init__(self, rng: random.Random, sex: str, region: str, birth_day: int, start: int, end: int) -> None:
        self.rng, self.sex, self.region, self.birth_day, self.start, self.end = rng, sex, region, birth_day, start, end
        self._aspects: dict[tuple[int, int], str | None] = {}
        # The first day of each age band after the first: band(day) is one bisection.
        self._band_starts = [birth_day + math.ceil(low * DAYS_PER_YEAR) for low, _ in AGE_BANDS[1:]]

    def age(self, day: int) -> int:
        return int((day - self.birth_day) / DAYS_PER_YEAR)

    def band(self, day: int) -> int:
        return bisect.bisect_right(self._band_starts, day)

    def aspect(self, condition: int, number: int, group: Group) -> str | None:
        """None if the patient lacks this aspect; the fixed code; or "" to draw a code per visit.

        Drawn once, on first use, from the patient's own stream (so it is deterministic too)."""
        key = (condition, number)
        if key not in self._aspects:
            carried = group.carriers >= 1 or self.rng.random() < group.carriers
            self._aspects[key] = None if not carried else group.draw(self.rng) if group.fixed else ""
        return self._aspects[key]
