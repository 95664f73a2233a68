#!/usr/bin/env python
"""Does the order of the codes inside a bundle change what a model can be scored on? One run, the
same data three ways.

A synthetic claims cohort is preprocessed with each within-bundle order (`sorted`, `frequency`,
`shuffled`: stored sorted, shuffled afresh every epoch in training), a tiny model is trained on
each for the same steps and seed, and each is evaluated zero-shot on the same ICD-9 hospital
(preprocessed with that model's frozen tokenizer) by

* "first step": the distribution right after the visit's `[BEGIN]` alone (protocol A with a
  one-token roll-out), the cheap ranking that is unsound under a sorted order;
* protocol A (greedy roll-out, highest probability per code) and protocol B (expected count over
  sampled roll-outs),

beside the population-frequency and history baselines, at ICD-10 category level.

    python benchmarks/bundle_order.py [--patients 2000] [--hospital-patients 150] [--steps 300] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ORDERS = ("sorted", "frequency", "shuffled")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=2000, help="claims patients to train on (default: 2000)")
    parser.add_argument("--hospital-patients", type=int, default=150, help="hospital patients evaluated (default: 150)")
    parser.add_argument("--steps", type=int, default=300, help="training steps per model (default: 300)")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "bundle_order", help="work folder (replaced)")
    return parser.parse_args(argv)


def run(*command: str) -> None:
    done = subprocess.run([sys.executable, *command], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")})
    if done.returncode:
        raise SystemExit(f"{' '.join(command[:2])} failed:\n{done.stderr[-3000:]}")


def evaluate(checkpoint: Path, data: Path, output: Path, *extra: str) -> dict:
    run("examples/evaluate_next_visit.py", "--checkpoint", str(checkpoint), "--data", str(data), "--output",
        str(output), "--quiet", "--bootstrap", "0", "--no-routing", "--overwrite", *extra)
    return json.loads((output / "report.json").read_text())["levels"]["category"]["methods"]


def main(argv=None) -> None:
    args = parse_args(argv)
    out = args.out
    run("-m", "sparseehr_mcore.synthetic", str(out / "claims"), "--patients", str(args.patients), "--no-progress")
    run("-m", "sparseehr_mcore.synthetic", str(out / "hospital"), "--profile", "hospital", "--patients",
        str(args.hospital_patients), "--seed", "1", "--no-progress")
    rows = []
    for order in ORDERS:
        data, run_dir = out / f"claims-{order}", out / f"run-{order}"
        run("tools/preprocess_ehr.py", "--source", "events", "--input", str(out / "claims"), "--output-dir", str(data),
            "--bundle-order", order)
        run("tools/preprocess_ehr.py", "--source", "events", "--input", str(out / "hospital"), "--output-dir",
            str(out / f"hospital-{order}"), "--tokenizer-dir", str(data / "tokenizer"), "--split", "0,0,1")
        run("examples/pretrain_sparseehr.py", "--config", "examples/configs/quickstart.yaml",
            "--data.preprocessed_dirs", str(data), "--checkpoint.save_dir", str(run_dir),
            "--train.train_iters", str(args.steps), "--train.eval_interval", "0", "--checkpoint.save_interval", "0")
        hospital = out / f"hospital-{order}"
        first = evaluate(run_dir, hospital, out / f"eval-{order}-first", "--protocols", "A", "--max-new-tokens", "1",
                         "--rollout-bundles", "1")
        full = evaluate(run_dir, hospital, out / f"eval-{order}")
        rows.append((order, first["model (protocol A)"]["recall"], full))
        print(f"trained and evaluated bundle order {order}", flush=True)
    baselines = rows[0][2]
    print(f"\nR@10 / R@20 at ICD-10 category level, {args.hospital_patients} ICD-9 hospital patients, tiny model, "
          f"{args.steps} steps on {args.patients} claims patients:")
    print(f"{'bundle order':<12} | {'first step':>13} | {'protocol A':>13} | {'protocol B':>13}")
    for order, first, full in rows:
        cells = [first, full["model (protocol A)"]["recall"], full["model (protocol B)"]["recall"]]
        print(f"{order:<12} | " + " | ".join(f"{c['10']:.3f} / {c['20']:.3f}" for c in cells))
    for name in ("population frequency", "history"):
        recall = baselines[name]["recall"]
        print(f"{name:<21} {recall['10']:.3f} / {recall['20']:.3f}")


if __name__ == "__main__":
    main()
