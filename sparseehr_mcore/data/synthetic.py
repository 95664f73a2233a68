"""A synthetic cohort in the generic events-table format, for the quickstart and the tests.

No real patient is in it. Each patient carries one to three chronic conditions; each condition has
its diagnosis codes (real ICD-10-CM) and follow-up procedures (real CPT), so visits repeat a
patient's own codes with occasional acute problems: structure a small model can learn in minutes.
The same seed always writes the same bytes.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from pathlib import Path

# condition -> (diagnosis codes, follow-up procedure codes)
CONDITIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "type 2 diabetes": (("E119", "E1165", "E1122", "Z794"), ("83036", "82947", "99214")),
    "hypertension": (("I10", "I119"), ("99213", "93000")),
    "hyperlipidaemia": (("E785", "E782"), ("80061",)),
    "coronary disease": (("I2510", "I252"), ("93000", "93306", "99214")),
    "COPD": (("J449", "J441"), ("94010", "99213")),
    "asthma": (("J45909", "J4540"), ("94010",)),
    "chronic kidney disease": (("N183", "N189"), ("80048", "82565")),
    "depression": (("F329", "F331"), ("90834", "99213")),
    "hypothyroidism": (("E039",), ("84443",)),
    "osteoarthritis": (("M179", "M1990"), ("73560", "20610")),
    "atrial fibrillation": (("I4891", "Z7901"), ("93000", "85610")),
    "obesity": (("E6601", "Z6841"), ("99213",)),
}
ACUTE = ("J069", "N390", "R0789", "M545", "K5900", "R51", "J189", "S61411A", "Z23")


def write_synthetic_cohort(directory: str | Path, *, patients: int = 200, seed: int = 0) -> Path:
    """Write `patients.csv` and `events.csv` (the `events` source of tools/preprocess_ehr.py).

    Args:
        directory: created if needed.
        patients: how many patients.
        seed: the cohort is a function of the seed alone.

    Returns:
        `directory`.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    names = sorted(CONDITIONS)
    patient_rows, event_rows = [], []
    for index in range(patients):
        patient_id = f"SYN{index:06d}"
        patient_rows.append([patient_id, rng.choice("FM"), rng.randint(1935, 2005), rng.choice(["NE", "MW", "S", "W"])])
        conditions = rng.sample(names, rng.randint(1, 3))
        day = dt.date(2012, 1, 1) + dt.timedelta(days=rng.randint(0, 700))
        for _ in range(rng.randint(2, 25)):
            codes = set()
            for condition in conditions:
                diagnoses, procedures = CONDITIONS[condition]
                if rng.random() < 0.8:
                    codes.add(("ICD10CM", rng.choice(diagnoses)))
                if rng.random() < 0.5:
                    codes.add(("CPT", rng.choice(procedures)))
            if rng.random() < 0.3 or not codes:
                codes.add(("ICD10CM", rng.choice(ACUTE)))
            event_rows += [[patient_id, day.isoformat(), system, code] for system, code in sorted(codes)]
            day += dt.timedelta(days=rng.randint(14, 180))
    _write_csv(directory / "patients.csv", ["patient_id", "sex", "birth_year", "region"], patient_rows)
    _write_csv(directory / "events.csv", ["patient_id", "date", "code_system", "code"], event_rows)
    return directory


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m sparseehr_mcore.data.synthetic",
        description="Write a synthetic cohort (patients.csv, events.csv) for tools/preprocess_ehr.py --source events.",
    )
    parser.add_argument("directory", help="output directory (created if needed)")
    parser.add_argument("--patients", type=int, default=200, help="number of patients (default: 200)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes (default: 0)")
    args = parser.parse_args(argv)
    write_synthetic_cohort(args.directory, patients=args.patients, seed=args.seed)
    print(f"wrote {args.patients} synthetic patients to {args.directory}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
