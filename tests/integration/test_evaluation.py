"""examples/evaluate_next_visit.py end to end: a tiny model trained on the MIMIC-IV demo slice,
evaluated from its Megatron-Core checkpoint and from its Hugging Face export; KV-cached roll-outs;
bad input refused with one line."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from hf_export_helpers import load_tool_main
from script_loading import load_script

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def evaluate_main():
    return load_script("examples/evaluate_next_visit.py").main


@pytest.fixture(scope="module")
def trained(mimic_iv_preprocessed, tmp_path_factory):
    """(data dir, Megatron-Core run root, HF export) of a tiny model trained 40 steps on the demo slice."""
    root = tmp_path_factory.mktemp("evaluation")
    config = {
        "model": {"preset": "tiny", "vocab_size": "tokenizer", "seq_length": 128},
        "data": {"preprocessed_dirs": [str(mimic_iv_preprocessed)], "num_workers": 0},
        "train": {"train_iters": 40, "micro_batch_size": 4, "global_batch_size": 8, "lr": 3e-3, "min_lr": 3e-4,
                  "warmup_iters": 4, "eval_interval": 0},
        "checkpoint": {"save_dir": str(root / "run"), "save_interval": 0, "keep_last": 1},
        "logging": {"log_interval": 20},
    }  # fmt: skip
    (root / "run.yaml").write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if k not in {"RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"}}
    done = subprocess.run([sys.executable, str(REPO_ROOT / "examples" / "pretrain_sparseehr.py"), "--config",
                           str(root / "run.yaml")], capture_output=True, text=True, env={**env, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert load_tool_main("convert_checkpoint")(["--to", "hf", "--input", str(root / "run"),
                                                 "--output", str(root / "hf")]) == 0
    return mimic_iv_preprocessed, root / "run", root / "hf"


def run_evaluation(checkpoint, data, output, *extra) -> dict:
    argv = ["--checkpoint", str(checkpoint), "--data", str(data), "--output", str(output), "--quiet",
            "--bootstrap", "200", *extra]
    assert evaluate_main()(argv) == 0
    return json.loads((output / "report.json").read_text())


def test_megatron_core_checkpoint_and_hf_export_give_the_same_report(trained, tmp_path):
    data, run, hf = trained
    from_mcore = run_evaluation(run, data, tmp_path / "mcore")
    from_hf = run_evaluation(hf, data, tmp_path / "hf")
    manifest = json.loads((data / "manifest.json").read_text())
    for report in (from_mcore, from_hf):
        assert report["data"]["harmonisation_fingerprint"] == manifest["harmonisation"]["fingerprint"]
        assert report["cohort"]["visits_scored"] > 20 and report["cohort"]["patients"] == 25
        assert set(report["levels"]["token"]["methods"]) == {"population frequency", "history", "model (protocol A)",
                                                             "model (protocol B)"}
        for name in ("report.md", "report.json", "timing.json", "recall_at_k.png", "breakdowns.png",
                     "endpoint_sweep.png", "routing_heatmap.png"):
            assert (tmp_path / report["checkpoint"]["kind"] / name).is_file(), name
    assert from_mcore["checkpoint"]["kind"] == "mcore" and from_mcore["checkpoint"]["iteration"] == 40
    assert from_mcore["checkpoint"]["path"].endswith("iter_0000040") and from_hf["checkpoint"]["path"] == str(hf)
    # Protocol B's per-step probabilities came from Megatron-Core's forward on one side and from the
    # HF model on the other; the roll-outs themselves are the HF model's on both sides.
    assert from_mcore["rollouts"]["B"]["max_abs_engine_difference"] < 1e-5
    assert from_hf["rollouts"]["B"]["max_abs_engine_difference"] is None
    for level in ("token", "category"):
        for method in ("model (protocol B)", "model (protocol A)", "history", "population frequency"):
            ours, theirs = (r["levels"][level]["methods"][method] for r in (from_mcore, from_hf))
            for variant in ("recall", "pooled", "recall_with_unknown"):
                for k, value in ours[variant].items():
                    assert abs(value - theirs[variant][k]) <= 1e-6, (level, method, variant, k)
    # The model learnt something the baselines do not know by heart: it beats guessing by far.
    model = from_hf["levels"]["category"]["methods"]["model (protocol B)"]["recall"]["20"]
    assert model > 20 / from_hf["tokenizer"]["categories"]
    routing = from_hf["routing"]
    assert set(routing["layers"]) == {"2", "3"} and 0 <= routing["mean_expert_util_std"] < 0.5


def test_same_inputs_same_report_bytes(trained, tmp_path):
    data, _, hf = trained
    run_evaluation(hf, data, tmp_path / "a", "--protocols", "B", "--no-routing")
    run_evaluation(hf, data, tmp_path / "b", "--protocols", "B", "--no-routing")
    first, second = ((tmp_path / d / "report.json").read_text() for d in "ab")
    assert first.replace(str(tmp_path / "a"), "") == second.replace(str(tmp_path / "b"), "")


def test_kv_cached_roll_out_gives_the_tokens_of_an_uncached_one(trained):
    from transformers import AutoModelForCausalLM

    from sparseehr_mcore.data.manifest import dataset_prefixes
    from sparseehr_mcore.evaluation.codes import CodeSpace
    from sparseehr_mcore.evaluation.cohort import read_cohort
    from sparseehr_mcore.evaluation.rollout import GrammarIds, roll_out
    from sparseehr_mcore.tokenization.metadata import load_tokenizer

    data, _, hf = trained
    model = AutoModelForCausalLM.from_pretrained(str(hf)).eval()
    tokenizer = load_tokenizer(hf / "sparseehr_tokenizer")
    codes = CodeSpace.from_tokens(tokenizer.tokens)
    cohort = read_cohort(dataset_prefixes(data), codes=codes, special_ids=tokenizer.special_ids, context_length=96)
    grammar = GrammarIds.build(codes, tokenizer.tokens, tokenizer.special_ids, model.config.vocab_size)
    contexts = [v.context for v in cohort.visits[:12]]
    kwargs = dict(quotas=[2] * len(contexts), grammar=grammar, max_new_tokens=32)
    cached = roll_out(model, contexts, use_cache=True, **kwargs)
    uncached = roll_out(model, contexts, use_cache=False, **kwargs)
    alone = [roll_out(model, [c], use_cache=True, **{**kwargs, "quotas": [2]})[0] for c in contexts[:4]]
    assert sum(len(o.tokens) for o in cached) > 2 * len(contexts)
    for a, b in zip(cached, uncached):
        assert np.array_equal(a.tokens, b.tokens)
        np.testing.assert_allclose(a.logits, b.logits, atol=1e-4)
    for a, b in zip(cached, alone):  # left padding in a batch changes nothing
        assert np.array_equal(a.tokens, b.tokens)
    seeds = [(1, 2, n) for n in range(len(contexts))]
    sampled = roll_out(model, contexts, seeds=seeds, **kwargs)
    resampled = roll_out(model, contexts[::-1], seeds=seeds[::-1], **kwargs)[::-1]
    assert all(np.array_equal(a.tokens, b.tokens) for a, b in zip(sampled, resampled))  # per-visit seeds
    assert any(not np.array_equal(a.tokens, b.tokens) for a, b in zip(sampled, cached))
    # The grammar: no code twice in a bundle, delimiters where they belong.
    end, begin = tokenizer.special_ids["bundle_end"], tokenizer.special_ids["bundle_begin"]
    for out in sampled + cached:
        bundle = []
        for token in out.tokens.tolist():
            if token == end:
                bundle = []
            elif token != begin:
                assert token not in bundle and codes.bundle_code_mask[token] or tokenizer.tokens[token] == "[EOD]"
                bundle.append(token)


def one_line_error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        evaluate_main()(argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "Traceback" not in error, error
    return error


def test_bad_inputs_are_one_clear_line(trained, synthetic_preprocessed, tmp_path, capsys):
    data, run, hf = trained
    out = str(tmp_path / "out")
    assert "another vocabulary" in one_line_error(
        ["--checkpoint", str(hf), "--data", str(synthetic_preprocessed), "--output", out], capsys)
    assert "does not exist" in one_line_error(
        ["--checkpoint", str(tmp_path / "missing"), "--data", str(data), "--output", out], capsys)
    # A dataset whose every row was dropped has no split at all.
    (tmp_path / "empty").mkdir()
    with open(tmp_path / "empty" / "events.csv", "w", newline="") as stream:
        csv.writer(stream).writerows([["patient_id", "date", "code_system", "code"], ["x", "2020-01-01", "LOINC", "1"]])
    assert load_tool_main("preprocess_ehr")(["--source", "events", "--input", str(tmp_path / "empty"),
                                             "--output-dir", str(tmp_path / "empty-out")]) == 0
    assert "holds no patients" in one_line_error(
        ["--checkpoint", str(hf), "--data", str(tmp_path / "empty-out"), "--output", out], capsys)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("not ours")
    assert "--overwrite" in one_line_error(
        ["--checkpoint", str(hf), "--data", str(data), "--output", str(tmp_path / "full")], capsys)
    assert (tmp_path / "full" / "keep.txt").is_file()
    (tmp_path / "file").write_text("in the way")
    assert "cannot create it" in one_line_error(
        ["--checkpoint", str(hf), "--data", str(data), "--output", str(tmp_path / "file" / "report")], capsys)
    assert "--splits" in one_line_error(
        ["--checkpoint", str(hf), "--data", str(data), "--output", out, "--splits", "nope"], capsys)
    assert "greedy" in one_line_error(
        ["--checkpoint", str(hf), "--data", str(data), "--output", out, "--rollouts", "3"], capsys)


def test_a_report_folder_is_replaced_whole(trained, tmp_path):
    """Issue 13, item 3: a rerun replaces the tool's own earlier report without mixing (a plot the
    new run does not make goes), and --overwrite clears files of any origin."""
    data, _, hf = trained
    fast = ("--protocols", "A", "--max-patients", "6", "--no-routing")
    out = tmp_path / "report"
    out.mkdir()
    (out / "routing_heatmap.png").write_bytes(b"an earlier run's plot")
    run_evaluation(hf, data, out, *fast)
    written = sorted(p.name for p in out.iterdir())
    assert "routing_heatmap.png" not in written and "report.json" in written
    (out / "notes.txt").write_text("not the tool's")
    run_evaluation(hf, data, out, *fast, "--overwrite")
    assert sorted(p.name for p in out.iterdir()) == written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no staging folder left
