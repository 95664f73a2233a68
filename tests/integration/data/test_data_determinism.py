"""Same input and flags give the same bytes: twice over, with 1 or 2 workers, and 1 or 4 shards."""

from __future__ import annotations

import csv
import shutil
import random

import numpy as np
import pytest

from sparseehr_mcore.data.indexed import open_dataset
from sparseehr_mcore.data.manifest import read_manifest

CODES = ["E119", "I10", "J45909", "N179", "K219", "F329", "M545", "E785", "I2510", "J449", "25000", "4019"]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """300 synthetic patients in a generic events table (ICD-10 and ICD-9 codes, CPT, repeats)."""
    root = tmp_path_factory.mktemp("cohort")
    rng = random.Random(7)
    with open(root / "events.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["patient_id", "date", "code_system", "code"])
        for patient in range(300):
            for _ in range(rng.randint(1, 30)):
                day = f"20{rng.randint(10, 22)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
                code = rng.choice(CODES)
                system = "ICD9CM" if code.isdigit() else "ICD10CM"
                writer.writerow([f"pt-{patient}", day, system, code])
                if rng.random() < 0.3:
                    writer.writerow([f"pt-{patient}", day, "CPT", rng.choice(["99213", "99214", "G0378"])])
    return root


def run(preprocess_main, cohort, output, *extra):
    argv = ["--source", "events", "--input", str(cohort), "--output-dir", str(output), *extra]
    assert preprocess_main(argv) == 0
    return output


def output_bytes(output, *, with_manifest=True):
    files = sorted(p for p in output.rglob("*") if p.is_file() and (with_manifest or p.name != "manifest.json"))
    # shards/ and timelines/ follow the work layout (shard and bucket counts); the datasets must not.
    return {str(p.relative_to(output)): p.read_bytes() for p in files
            if p.relative_to(output).parts[0] not in ("shards", "timelines")}


def test_same_input_same_bytes(preprocess_main, cohort, tmp_path):
    first = output_bytes(run(preprocess_main, cohort, tmp_path / "a"))
    second = output_bytes(run(preprocess_main, cohort, tmp_path / "b"))
    kept = {run: {p.name: p.read_bytes() for p in (tmp_path / run / "timelines").iterdir()} for run in "ab"}
    assert sorted(kept["a"]) == ["b00000.events.parquet", "b00000.patients.parquet"]
    assert kept["a"] == kept["b"]
    assert sorted(first) == ["manifest.json", "test.bin", "test.idx", "test.visits.npy",
                             "tokenizer/term_counts.json", "tokenizer/tokenizer_config.json",
                             "tokenizer/tokenizer_metadata.json", "tokenizer/vocab.json", "train.bin", "train.idx",
                             "train.visits.npy", "valid.bin", "valid.idx", "valid.visits.npy"]
    assert first == second


@pytest.mark.slow
def test_workers_and_shards_do_not_change_the_datasets(preprocess_main, cohort, tmp_path):
    one = output_bytes(run(preprocess_main, cohort, tmp_path / "one"), with_manifest=False)
    # A tiny --bucket-mb cuts the cohort into several buckets per shard.
    two_workers = run(preprocess_main, cohort, tmp_path / "two", "--workers", "2", "--num-shards", "2",
                      "--bucket-mb", "0.02")
    assert read_manifest(two_workers)["num_buckets"] > 2
    four_shards = run(preprocess_main, cohort, tmp_path / "four", "--num-shards", "4")
    assert output_bytes(two_workers, with_manifest=False) == one
    assert output_bytes(four_shards, with_manifest=False) == one
    # The shards, run separately and concatenated in shard order, are the one-shard dataset.
    manifest = read_manifest(four_shards)
    for split, names in manifest["shard_datasets"].items():
        whole = open_dataset(tmp_path / "one" / split)
        parts = [open_dataset(four_shards / name) for name in names]
        assert sum(len(p) for p in parts) == len(whole)
        joined = [p[i] for p in parts for i in range(len(p))]
        assert all(np.array_equal(a, whole[i]) for i, a in enumerate(joined))
    assert len(manifest["shard_datasets"]["train"]) == 4


def test_shards_run_as_separate_jobs_give_the_same_datasets(preprocess_main, cohort, tmp_path):
    """The SLURM recipe: stage once, build and tokenize one shard per job, vocab and finish once."""
    whole = output_bytes(run(preprocess_main, cohort, tmp_path / "whole"), with_manifest=False)
    out = tmp_path / "jobs"
    flags = ["--num-shards", "4", "--bucket-mb", "0.05"]
    run(preprocess_main, cohort, out, *flags, "--phase", "stage")
    for shard in (3, 1, 0, 2):  # any order, as independent array tasks finish
        run(preprocess_main, cohort, out, *flags, "--phase", "build", "--shard-index", str(shard))
    run(preprocess_main, cohort, out, *flags, "--phase", "vocab")
    for shard in (2, 0, 3, 1):
        run(preprocess_main, cohort, out, *flags, "--phase", "tokenize", "--shard-index", str(shard))
    assert not (out / "manifest.json").exists()  # not complete until finish
    run(preprocess_main, cohort, out, *flags, "--phase", "finish")
    assert output_bytes(out, with_manifest=False) == whole
    assert not (out / ".work").exists()


def test_phases_refuse_changed_flags(preprocess_main, cohort, tmp_path, capsys):
    run(preprocess_main, cohort, tmp_path, "--phase", "stage")
    with pytest.raises(SystemExit):
        run(preprocess_main, cohort, tmp_path, "--phase", "build", "--min-count", "3")
    assert "staged with different flags" in capsys.readouterr().err


def test_retokenizing_a_sharded_run_equals_a_direct_run(preprocess_main, cohort, tmp_path):
    flags = ["--num-shards", "2", "--bucket-mb", "0.02", "--min-count", "2"]
    first = run(preprocess_main, cohort, tmp_path / "first", *flags)
    assert read_manifest(first)["num_buckets"] > 2
    tokenizer = tmp_path / "frozen"
    shutil.copytree(first / "tokenizer", tokenizer)
    argv = ["--retokenize", str(first), "--tokenizer-dir", str(tokenizer), "--output-dir", str(tmp_path / "again"),
            "--workers", "2"]
    assert preprocess_main(argv) == 0
    direct = run(preprocess_main, cohort, tmp_path / "direct", *flags, "--tokenizer-dir", str(tokenizer))
    every_file = {str(p.relative_to(direct)) for p in direct.rglob("*") if p.is_file()}
    assert {name.split("/")[0] for name in every_file} >= {"shards", "timelines", "tokenizer", "manifest.json"}
    again = tmp_path / "again"
    assert {str(p.relative_to(again)) for p in again.rglob("*") if p.is_file()} == every_file
    assert all((again / name).read_bytes() == (direct / name).read_bytes() for name in sorted(every_file))
