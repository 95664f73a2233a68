"""Preprocessing throughput and memory on a generated cohort, against a plain read of the same files.

    python benchmarks/preprocess.py [--events 1000000] [--scale 2] [--workers 1,2] [--rounds 3] [--keep DIR]

For each input size (`--events`, and `--events x --scale`) and worker count it runs
tools/preprocess_ehr.py in a fresh process and prints events/s, the ratio of the preprocessing time
to the bare polars pipeline below (the goal: at most 1.5x at 4M events with 2 workers; each round
times the bare pipeline right before our runs, and the summary gives the median ratio over the
rounds, since this machine's speed drifts by up to 2x within minutes) and to the
time polars needs just to read the same CSV files, and the peak resident memory of the run's
processes (the largest single process: main or worker). Times are the whole process and the
pipeline alone (after the interpreter and imports, a fixed cost). As a yardstick it also times a
bare polars pipeline doing only the least any correct run must (read, parse dates, drop duplicate
events, sort by patient and day, write the codes), so the ratios can be read against what a
sort-based pipeline costs on this machine at all. It then projects the time for 50 million
patients from the measured throughput. Figures go to docs/benchmarks.md (## Preprocessing).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
EVENTS_PER_PATIENT = 20
# Real code shapes so that harmonisation does its normal work (ICD-9 through the GEM, ICD-10 cut).
ICD10 = ["E119", "I10", "J45909", "N179", "K219", "F329", "M545", "E785", "I2510", "J449", "Z23", "R0789"]
ICD9 = ["25000", "4019", "41401", "4280", "42731", "5849", "2724", "49390", "53081", "30000"]
CPT = ["99213", "99214", "80053", "85025", "93000", "G0378", "36415", "71046"]


def generate(directory: Path, *, events: int, seed: int) -> None:
    """A generic events table (+ patients) with `events` rows, EVENTS_PER_PATIENT per patient on average."""
    rng = np.random.default_rng(seed)
    patients = max(1, events // EVENTS_PER_PATIENT)
    directory.mkdir(parents=True, exist_ok=True)
    ids = np.char.add("p", rng.integers(0, patients, events).astype(str))
    systems = rng.choice(np.array(["ICD10CM", "ICD9CM", "CPT"]), events, p=[0.5, 0.2, 0.3])
    codes = np.where(systems == "ICD10CM", rng.choice(ICD10, events),
                     np.where(systems == "ICD9CM", rng.choice(ICD9, events), rng.choice(CPT, events)))
    days = np.datetime64("2010-01-01") + rng.integers(0, 4000, events).astype("timedelta64[D]")
    pl.DataFrame({"patient_id": ids, "date": days.astype(str), "code_system": systems, "code": codes}).write_csv(
        directory / "events.csv")
    pl.DataFrame({
        "patient_id": np.char.add("p", np.arange(patients).astype(str)),
        "sex": rng.choice(["F", "M"], patients), "birth_year": rng.integers(1930, 2010, patients),
        "region": rng.choice(["NE", "MW", "S", "W"], patients),
    }).write_csv(directory / "patients.csv")


def read_seconds(directory: Path) -> float:
    """Best of 3: polars reading every input CSV in full (multi-threaded)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for path in sorted(directory.glob("*.csv")):
            pl.read_csv(path, infer_schema=False)
        best = min(best, time.perf_counter() - start)
    return best


def bare_pipeline_seconds(directory: Path) -> float:
    """One run of the least work any correct run does, in plain polars (no checks, no accounting,
    no harmonisation, no tokenizer): read, parse dates, drop duplicate events, sort, write codes."""
    start = time.perf_counter()
    events = (
        pl.read_csv(directory / "events.csv", infer_schema=False)
        .with_columns(pl.col("date").str.to_date("%Y-%m-%d", strict=False))
        .unique(["patient_id", "date", "code_system", "code"])
        .sort("patient_id", "date", "code_system", "code")
    )
    codes = events["code"].cast(pl.Categorical).to_physical().to_numpy()
    codes.astype(np.int32).tofile(directory / "bare.bin")
    seconds = time.perf_counter() - start
    (directory / "bare.bin").unlink()
    return seconds


CHILD = """
import json, resource, sys, time
started = time.perf_counter()
sys.argv = ["preprocess_ehr.py", *json.loads(sys.argv[1])]
import runpy
import sparseehr_mcore.data.cli, sparseehr_mcore.data.preprocess  # the tool's imports, timed apart
imported = time.perf_counter()
try:
    runpy.run_path({tool!r}, run_name="__main__")
except SystemExit as done:
    assert not done.code, done.code
finished = time.perf_counter()
# VmHWM, not RUSAGE_SELF: Linux carries ru_maxrss across exec, so it would report this benchmark's
# own (cohort-generating) process. Workers are spawned from this one: their ru_maxrss is theirs.
own_kib = int(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")))
peak_kib = max(own_kib, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print("RESULT", json.dumps({{"pipeline": finished - imported, "peak_mib": peak_kib / 1024}}))
"""


def preprocess(directory: Path, output: Path, *, workers: int, bucket_mb: float) -> dict:
    shutil.rmtree(output, ignore_errors=True)  # an earlier round's output (--keep): not this run's work to clear
    argv = ["--source", "events", "--input", str(directory), "--output-dir", str(output),
            "--workers", str(workers), "--bucket-mb", str(bucket_mb)]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD.format(tool=str(REPO / "tools" / "preprocess_ehr.py")),
                           json.dumps(argv)], capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    line = next(l for l in done.stdout.splitlines() if l.startswith("RESULT"))
    result = {**json.loads(line[len("RESULT "):]), "seconds": seconds}
    manifest = json.loads((output / "manifest.json").read_text())
    result["events_read"] = manifest["counts"]["events"]["read"]
    result["patients"] = manifest["counts"]["patients"]["kept"]
    result["tokens"] = sum(manifest["counts"]["tokens_written"].values())
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the smaller cohort")
    parser.add_argument("--scale", type=float, default=2.0, help="the larger cohort is this many times bigger")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--bucket-mb", type=float, default=8.0, help="--bucket-mb of the runs (memory bound)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds per cohort; each times the bare polars pipeline, then every worker count")
    parser.add_argument("--keep", type=Path, default=None, help="generate into this directory and keep it")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    root = args.keep or Path(tempfile.mkdtemp(prefix="sparseehr-bench-"))
    worker_counts = [int(w) for w in args.workers.split(",")]
    best_rate = None
    for events in (args.events, int(args.events * args.scale)):
        cohort = root / f"cohort-{events}"
        if not (cohort / "events.csv").is_file():
            generate(cohort, events=events, seed=events)
        size_mb = sum(p.stat().st_size for p in cohort.glob("*.csv")) / 2**20
        baseline = read_seconds(cohort)
        print(f"events {events:>9,}  input {size_mb:6.1f} MiB  read-only {baseline:5.2f} s", flush=True)
        ratios: dict[int, list[float]] = {w: [] for w in worker_counts}
        for round_number in range(1, args.rounds + 1):
            # The bare pipeline and our runs side by side in each round: the machine's speed drifts
            # between rounds (up to 2x here), so each ratio compares runs a few seconds apart.
            bare = bare_pipeline_seconds(cohort)
            print(f"  round {round_number}  bare polars pipeline {bare:5.2f} s ({bare / baseline:4.1f}x read)", flush=True)
            for workers in worker_counts:
                result = preprocess(cohort, root / f"out-{events}-{workers}", workers=workers, bucket_mb=args.bucket_mb)
                ratios[workers].append(result["pipeline"] / bare)
                rate = result["events_read"] / result["pipeline"]
                if best_rate is None or rate > best_rate[0]:
                    best_rate = (rate, workers, result["events_read"] / max(result["patients"], 1))
                print(f"    workers {workers}  process {result['seconds']:5.2f} s  pipeline {result['pipeline']:5.2f} s  "
                      f"{rate:>9,.0f} events/s  ratio to the bare polars pipeline: pipeline {result['pipeline'] / bare:4.2f}x  "
                      f"process {result['seconds'] / bare:4.2f}x  ratio to read: pipeline "
                      f"{result['pipeline'] / baseline:5.1f}x  peak RSS {result['peak_mib']:6.0f} MiB", flush=True)
        for workers, values in ratios.items():
            print(f"  events {events:,} workers {workers}: ratio to the bare polars pipeline, median of {len(values)} "
                  f"rounds {statistics.median(values):4.2f}x (range {min(values):4.2f}-{max(values):4.2f}x)", flush=True)
    rate, workers, per_patient = best_rate
    events_50m = 50_000_000 * per_patient
    hours = events_50m / rate / 3600
    print(f"projection: 50M patients x {per_patient:.0f} events = {events_50m:,.0f} events at {rate:,.0f} events/s "
          f"({workers} workers) = {hours:.1f} h on one such machine (every phase divides further across SLURM array "
          "tasks: stage by file and --part-mb part, build and tokenize by shard)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
