"""One vocabulary over SynPUF OMOP, MIMIC-III and MIMIC-IV: build_vocab, --retokenize, then a blended run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from sparseehr_mcore.data.buckets import iter_timelines
from sparseehr_mcore.data.indexed import open_dataset
from sparseehr_mcore.data.manifest import dataset_prefixes, read_manifest
from sparseehr_mcore.data.timeline import PatientTimeline
from sparseehr_mcore.tokenization.metadata import load_tokenizer

REPO_ROOT = Path(__file__).resolve().parents[3]
# The flags the session's `shared_outputs` ran with, per source (tests/integration/data/conftest.py).
RAW = {
    "mimic-iv": ("mimic-iv-demo-2.2-dev/hosp", []),
    "mimic-iii": ("mimic-iii-demo-1.4", ["--gem-dir", "cms-gems-2018"]),
    "omop": ("synpuf-omop-50", []),
}


@pytest.fixture(scope="module")
def shared_tokenizer(shared_outputs, build_vocab_main, tmp_path_factory):
    output = tmp_path_factory.mktemp("vocab") / "tokenizer"
    assert build_vocab_main(["--inputs", *(str(shared_outputs[s]) for s in sorted(RAW)), "--output", str(output)]) == 0
    return output


@pytest.fixture(scope="module")
def retokenized(shared_outputs, shared_tokenizer, preprocess_main, tmp_path_factory):
    root = tmp_path_factory.mktemp("retokenized")
    for source in RAW:
        argv = ["--retokenize", str(shared_outputs[source]), "--tokenizer-dir", str(shared_tokenizer),
                "--output-dir", str(root / source)]
        assert preprocess_main(argv) == 0
    return {source: root / source for source in RAW}


def tree_bytes(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_shared_vocabulary_holds_every_training_term_of_every_source(shared_outputs, shared_tokenizer):
    merged = Counter()
    for source in RAW:
        merged.update(json.loads((shared_outputs[source] / "tokenizer" / "term_counts.json").read_text()))
    assert json.loads((shared_tokenizer / "term_counts.json").read_text()) == dict(merged)
    tokenizer = load_tokenizer(shared_tokenizer)
    assert set(merged) <= set(tokenizer.tokens)
    assert tokenizer.vocab_size < sum(read_manifest(shared_outputs[s])["tokenizer"]["vocab_size"] for s in RAW)
    sources = json.loads((shared_tokenizer / "vocab_sources.json").read_text())
    assert [item["source"] for item in sources["sources"]] == sorted(RAW)


@pytest.mark.parametrize("source", sorted(RAW))
def test_retokenized_directory_equals_a_direct_run_with_the_shared_tokenizer(
    source, retokenized, shared_tokenizer, shared_data, preprocess_main, tmp_path
):
    folder, extra = RAW[source]
    extra = [str(shared_data / value) if value == "cms-gems-2018" else value for value in extra]
    direct = tmp_path / "direct"
    argv = ["--source", source, "--input", str(shared_data / folder), "--output-dir", str(direct),
            "--tokenizer-dir", str(shared_tokenizer), *extra]
    assert preprocess_main(argv) == 0
    assert tree_bytes(retokenized[source]) == tree_bytes(direct)
    assert read_manifest(direct)["tokenizer"]["reused"] is True


def test_retokenized_tokens_decode_with_the_shared_vocabulary(retokenized, shared_tokenizer):
    tokenizer = load_tokenizer(shared_tokenizer)
    for source, directory in retokenized.items():
        timelines = directory / "timelines"
        patients = pl.concat([pl.read_parquet(p) for p in sorted(timelines.glob("*.patients.parquet"))])
        events = pl.concat([pl.read_parquet(p) for p in sorted(timelines.glob("*.events.parquet"))])
        expected = [timeline for split, timeline in iter_timelines(patients, events) if split == "train"]
        dataset = open_dataset(dataset_prefixes(directory)["train"])
        assert len(dataset) == len(expected), source
        for index, timeline in enumerate(expected):
            ids = dataset[index]
            assert int(ids.max()) < tokenizer.vocab_size and not np.isin(ids, list(tokenizer.unknown_ids)).any()
            assert tokenizer.decode(ids) == PatientTimeline("", timeline.static, timeline.without_dates().bundles)


def test_build_vocab_refuses_mixed_settings_and_reused_vocabularies(
    shared_outputs, retokenized, build_vocab_main, preprocess_main, shared_data, tmp_path, capsys
):
    gaps = tmp_path / "gaps"
    argv = ["--source", "omop", "--input", str(shared_data / "synpuf-omop-50"), "--output-dir", str(gaps),
            "--tokenizer", "time-gaps"]
    assert preprocess_main(argv) == 0
    for inputs, message in (
        ([shared_outputs["mimic-iv"], gaps], "disagree on the tokenizer or the harmonisation"),
        ([retokenized["omop"]], "its vocabulary was reused"),
        ([shared_outputs["omop"], shared_outputs["omop"]], "given twice"),
    ):
        with pytest.raises(SystemExit) as stop:
            build_vocab_main(["--inputs", *map(str, inputs), "--output", str(tmp_path / "never")])
        assert stop.value.code == 2
        error = capsys.readouterr().err
        assert message in error and len(error.strip().splitlines()) == 1 and "Traceback" not in error
    assert not (tmp_path / "never").exists()


def test_retokenize_refuses_flags_that_would_change_outputs(shared_outputs, shared_tokenizer, preprocess_main,
                                                            tmp_path, capsys):
    base = ["--retokenize", str(shared_outputs["omop"]), "--output-dir", str(tmp_path / "out")]
    for extra, message in ((["--tokenizer-dir", str(shared_tokenizer), "--seed", "7"], "leave out --seed"),
                           ([], "needs --tokenizer-dir")):
        with pytest.raises(SystemExit):
            preprocess_main([*base, *extra])
        assert message in capsys.readouterr().err
    no_timelines = tmp_path / "copy"
    no_timelines.mkdir()
    (no_timelines / "manifest.json").write_bytes((shared_outputs["omop"] / "manifest.json").read_bytes())
    with pytest.raises(SystemExit):
        preprocess_main(["--retokenize", str(no_timelines), "--tokenizer-dir", str(shared_tokenizer),
                         "--output-dir", str(tmp_path / "out")])
    assert "its built timelines (timelines/) are missing" in capsys.readouterr().err


@pytest.mark.slow  # a training process: about 10 s alone, 30+ s on a loaded 2-core machine
def test_the_three_sources_train_together_with_the_tiny_preset(retokenized, tmp_path):
    config = {
        "model": {"preset": "tiny", "vocab_size": "tokenizer", "seq_length": 64},
        "data": {"preprocessed_dirs": [str(retokenized[s]) for s in sorted(RAW)], "weights": [1.0, 1.0, 2.0],
                 "num_workers": 0},
        "train": {"train_iters": 3, "micro_batch_size": 2, "global_batch_size": 4, "lr": 3e-3, "min_lr": 3e-4,
                  "warmup_iters": 1, "eval_interval": 3, "eval_iters": 1},
        "checkpoint": {"save_dir": str(tmp_path / "run"), "save_interval": 3, "keep_last": 1},
        "logging": {"log_interval": 1},
    }  # fmt: skip
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    launcher = {"RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK"}
    env = {k: v for k, v in os.environ.items() if k not in launcher}
    env["OMP_NUM_THREADS"] = "1"
    done = subprocess.run([sys.executable, str(REPO_ROOT / "examples" / "pretrain_sparseehr.py"), "--config",
                           str(tmp_path / "run.yaml")], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [row["train/lm_loss"] for row in rows if "train/lm_loss" in row]
    assert len(losses) == 3 and all(np.isfinite(losses))
    saved = yaml.safe_load((tmp_path / "run" / "run_config.yaml").read_text())
    assert saved["model"]["vocab_size"] == load_tokenizer(retokenized["omop"] / "tokenizer").vocab_size


def test_retokenize_refuses_foreign_files_and_overwrite_replaces_them(shared_outputs, shared_tokenizer,
                                                                     preprocess_main, tmp_path, capsys):
    output = tmp_path / "out"
    output.mkdir()
    (output / "notes.txt").write_text("not ours")
    argv = ["--retokenize", str(shared_outputs["omop"]), "--tokenizer-dir", str(shared_tokenizer),
            "--output-dir", str(output)]
    with pytest.raises(SystemExit):
        preprocess_main(argv)
    error = capsys.readouterr().err
    assert "notes.txt" in error and "--overwrite" in error and "Traceback" not in error
    assert sorted(p.name for p in output.iterdir()) == ["notes.txt"]  # nothing written
    assert preprocess_main([*argv, "--overwrite"]) == 0
    assert not (output / "notes.txt").exists() and (output / "manifest.json").is_file()
    inside = output / "tokenizer-copy"
    shutil.copytree(shared_tokenizer, inside)
    with pytest.raises(SystemExit):
        preprocess_main([*argv[:3], str(inside), *argv[4:], "--overwrite"])
    assert "--overwrite would delete --tokenizer-dir" in capsys.readouterr().err
