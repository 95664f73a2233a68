"""A synthetic cohort written in the generic events format of `tools/preprocess_ehr.py --source events`.

    DIR/patients.csv   patient_id,sex,birth_year,region
    DIR/events.csv     patient_id,date,code_system,code,visit_id
    DIR/cohort.json    how it was made: config, code-list sources and hashes, counts, ICD-9 outcomes

Rows are in patient, visit, day, system (diagnoses first), code order; a visit id is shared by all
rows of one visit (an outpatient day, or an inpatient stay: procedures on their days, diagnoses at
discharge). No row repeats (patient, day, system, code), so preprocessing drops none. The bytes are
a function of the config alone (no clock, no hash(), no set order: everything written is sorted).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from sparseehr_mcore.synthetic.icd9 import OUTCOMES, ReverseCoder
from sparseehr_mcore.synthetic.model import ClinicalModel, build_model
from sparseehr_mcore.synthetic.profiles import PROFILES
from sparseehr_mcore.synthetic.simulate import INPATIENT, SimulatedPatient, Simulator

GENERATOR_VERSION = 1
CODINGS = ("icd10", "icd9")
PATIENT_HEADER = "patient_id,sex,birth_year,region\n"
EVENT_HEADER = "patient_id,date,code_system,code,visit_id\n"
FLUSH_EVERY = 1000  # patients per write


@dataclass(frozen=True)
class CohortConfig:
    """What a cohort is a function of.

    Attributes:
        patients: number of patients.
        seed: the random seed.
        profile: `claims` or `hospital` (population and case mix, `profiles.py`).
        coding: `icd10` or `icd9` for diagnoses; None takes the profile's (claims: icd10, hospital: icd9).
        start_year, years: calendar window; None takes the profile's (claims 2016-2023, hospital 2008-2014).
    """

    patients: int = 4000
    seed: int = 0
    profile: str = "claims"
    coding: str | None = None
    start_year: int | None = None
    years: int | None = None

    def __post_init__(self) -> None:
        if self.patients < 1:
            raise ValueError(f"patients must be >= 1, got {self.patients}")
        if self.profile not in PROFILES:
            raise ValueError(f"profile must be one of {sorted(PROFILES)}, got {self.profile!r}")
        if self.coding is not None and self.coding not in CODINGS:
            raise ValueError(f"coding must be one of {CODINGS}, got {self.coding!r}")
        if self.years is not None and self.years < 1:
            raise ValueError(f"years must be >= 1, got {self.years}")
        if self.start_year is not None and not 1900 <= self.start_year <= 2200:
            raise ValueError(f"start_year must be in 1900..2200, got {self.start_year}")

    def resolved(self) -> CohortConfig:
        """The config with the profile's defaults filled in (what cohort.json records)."""
        profile = PROFILES[self.profile]
        return CohortConfig(
            patients=self.patients, seed=self.seed, profile=self.profile, coding=self.coding or profile.coding,
            start_year=profile.start_year if self.start_year is None else self.start_year,
            years=profile.years if self.years is None else self.years,
        )  # fmt: skip


@dataclass(frozen=True)
class CohortSummary:
    """Counts of a written cohort (also in cohort.json, except `seconds`)."""

    directory: Path
    patients: int
    visits: int
    inpatient_stays: int
    events: int
    distinct_codes: int
    seconds: float

    def line(self) -> str:
        """The one-line summary the command prints."""
        rate = self.patients / self.seconds if self.seconds > 0 else float("inf")
        return (
            f"{self.directory}: {self.patients} patients, {self.visits} visits ({self.inpatient_stays} inpatient), "
            f"{self.events} events, {self.distinct_codes} distinct codes in {self.seconds:.1f} s "
            f"({rate:.0f} patients/s)"
        )


class _Encoder:
    """Turns simulated patients into CSV lines, mapping diagnoses to ICD-9 when asked, and counts."""

    def __init__(self, *, model: ClinicalModel, coding: str) -> None:
        self.reverse = ReverseCoder(code_lists=model.code_lists) if coding == "icd9" else None
        self.diagnosis_system = "ICD9CM" if self.reverse else "ICD10CM"
        self.dates: dict[int, str] = {}
        self.events: Counter[str] = Counter()
        self.codes: dict[str, set[str]] = {self.diagnosis_system: set(), "ICD10PCS": set()}
        self.icd9_events: Counter[str] = Counter()
        self.icd9_sources: dict[str, str] = {}
        self.visits: Counter[str] = Counter()

    def _date(self, day: int) -> str:
        text = self.dates.get(day)
        if text is None:
            text = self.dates[day] = dt.date.fromordinal(day).isoformat()
        return text

    def _diagnoses(self, codes: set[str]) -> list[str]:
        if self.reverse is None:
            return sorted(codes)
        mapped: set[str] = set()
        for code in sorted(codes):
            choice = self.reverse.choose(code)
            self.icd9_events[choice.outcome] += 1
            self.icd9_sources[code] = choice.outcome
            mapped.update(choice.targets)
        return sorted(mapped)

    def lines(self, patient: SimulatedPatient) -> list[str]:
        """The patient's event lines, visit by visit; in a visit by day, diagnoses before procedures."""
        out, pid = [], patient.patient_id
        for number, visit in enumerate(patient.visits, start=1):
            visit_id = f"{pid}-{number:04d}"
            self.visits[visit.setting] += 1
            rows_by_day: dict[int, list[tuple[str, str]]] = {visit.end: []}
            for code in self._diagnoses(visit.diagnoses):  # dated at discharge
                rows_by_day[visit.end].append((self.diagnosis_system, code))
            for day, code in sorted(visit.procedures):
                rows_by_day.setdefault(day, []).append(("ICD10PCS", code))
            for day in sorted(rows_by_day):
                date = self._date(day)
                for system, code in rows_by_day[day]:
                    out.append(f"{pid},{date},{system},{code},{visit_id}\n")
                    self.events[system] += 1
                    self.codes[system].add(code)
        return out

    def report(self) -> dict:
        """Counts for cohort.json (sorted keys, so the same cohort gives the same bytes)."""
        report = {
            "visits": dict(sorted(self.visits.items())),
            "events": dict(sorted(self.events.items())),
            "distinct_codes": {system: len(codes) for system, codes in sorted(self.codes.items())},
        }
        if self.reverse is not None:
            distinct = Counter(self.icd9_sources.values())
            report["icd9_mapping"] = {
                "rule": "reverse GEM; parent code for codes newer than the GEM; round-trip targets first, "
                        "then the last in code order; combination: one code per choice list (docs/synthetic.md)",
                "events_by_outcome": {outcome: self.icd9_events.get(outcome, 0) for outcome in OUTCOMES},
                "icd10_codes_by_outcome": {outcome: distinct.get(outcome, 0) for outcome in OUTCOMES},
            }  # fmt: skip
        return report


def generate_cohort(
    directory: str | Path, *, config: CohortConfig, model: ClinicalModel | None = None, progress: bool | None = False
) -> CohortSummary:
    """Write `patients.csv`, `events.csv` and `cohort.json` of a synthetic cohort into `directory`.

    Args:
        directory: created if needed; the three files are replaced.
        config: size, seed, profile and coding.
        model: the resolved clinical model (built from the declared catalogue if None).
        progress: a tqdm bar over patients; None shows it only on a terminal.

    Returns:
        The counts and the time taken.
    """
    started = time.perf_counter()
    config = config.resolved()
    model = model or build_model()
    simulator = Simulator(model=model, profile=PROFILES[config.profile], seed=config.seed,
                          start_year=config.start_year, years=config.years)  # fmt: skip
    encoder = _Encoder(model=model, coding=config.coding)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    patient_lines, event_lines = [], []
    with open(directory / "patients.csv", "w", encoding="utf-8", newline="") as patients_file, \
            open(directory / "events.csv", "w", encoding="utf-8", newline="") as events_file:  # fmt: skip
        patients_file.write(PATIENT_HEADER)
        events_file.write(EVENT_HEADER)
        disable = None if progress is None else not progress  # tqdm: None = only on a terminal
        bar = tqdm(range(config.patients), desc="patients", unit=" patients", disable=disable)
        for number in bar:
            patient = simulator.patient(number)
            patient_lines.append(f"{patient.patient_id},{patient.sex},{patient.birth_year},{patient.region}\n")
            event_lines += encoder.lines(patient)
            if len(patient_lines) >= FLUSH_EVERY:
                patients_file.write("".join(patient_lines))
                events_file.write("".join(event_lines))
                patient_lines, event_lines = [], []
        patients_file.write("".join(patient_lines))
        events_file.write("".join(event_lines))
    report = encoder.report()
    metadata = {
        "generator": "sparseehr_mcore.synthetic",
        "generator_version": GENERATOR_VERSION,
        "config": asdict(config),
        "code_sources": model.code_lists.sources,
        "declared_codes": {"ICD10CM": len(model.diagnosis_codes), "ICD10PCS": len(model.procedure_codes)},
        "counts": {"patients": config.patients, **report},
    }
    (directory / "cohort.json").write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    return CohortSummary(
        directory=directory, patients=config.patients, visits=sum(encoder.visits.values()),
        inpatient_stays=encoder.visits.get(INPATIENT, 0), events=sum(encoder.events.values()),
        distinct_codes=sum(len(codes) for codes in encoder.codes.values()), seconds=time.perf_counter() - started,
    )  # fmt: skip
