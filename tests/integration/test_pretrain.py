"""examples/pretrain_sparseehr.py end to end on CPU: learning, parallel layouts, kill and resume,
and configurations refused before any compute."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml
from launch import free_port, kill_group, run_in_own_group, start_in_own_group

from sparseehr_mcore.checkpointing.integrity import FILES_RECORD

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow
SCRIPT = REPO_ROOT / "examples" / "pretrain_sparseehr.py"


def write_run_config(path: Path, data_dir: Path, save_dir: Path, **sections) -> Path:
    config = {
        "model": {"preset": "tiny", "vocab_size": "tokenizer", "seq_length": 64},
        "data": {"preprocessed_dirs": [str(data_dir)], "num_workers": 0},
        "train": {"train_iters": 20, "micro_batch_size": 2, "global_batch_size": 8, "lr": 3e-3, "min_lr": 3e-4,
                  "warmup_iters": 2, "eval_interval": 10, "eval_iters": 1},
        "checkpoint": {"save_dir": str(save_dir), "save_interval": 10, "keep_last": 3},
        "logging": {"log_interval": 1},
    }  # fmt: skip
    for section, values in sections.items():
        config[section].update(values)
    path.write_text(yaml.safe_dump(config))
    return path


def command_and_env(config: Path, *args: str, nproc: int = 1) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if k not in {"RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK"}}
    env["OMP_NUM_THREADS"] = "1"
    command = [sys.executable, str(SCRIPT), "--config", str(config), *args]
    if nproc > 1:
        command[1:1] = ["-m", "torch.distributed.run", f"--nproc_per_node={nproc}", f"--master_port={free_port()}"]
    return command, env


def run(config: Path, *args: str, nproc: int = 1, timeout: float = 600) -> subprocess.CompletedProcess:
    command, env = command_and_env(config, *args, nproc=nproc)
    return run_in_own_group(command, env=env, timeout=timeout)


def metrics(save_dir: Path) -> dict[int, dict]:
    """Logged values per step (training and validation rows of one step merged)."""
    steps: dict[int, dict] = {}
    for line in (save_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        steps.setdefault(row["step"], {}).update(row)
    return steps


def test_tiny_model_learns_on_real_patients_and_logs(tmp_path, mimic_iv_preprocessed):
    config = write_run_config(tmp_path / "run.yaml", mimic_iv_preprocessed, tmp_path / "run", train={"train_iters": 30})
    done = run(config)
    assert done.returncode == 0, done.stderr[-3000:]
    steps = metrics(tmp_path / "run")
    losses = [steps[s]["train/lm_loss"] for s in sorted(steps) if "train/lm_loss" in steps[s]]
    assert len(losses) == 30
    saved = yaml.safe_load((tmp_path / "run" / "run_config.yaml").read_text())
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    # Falling, and well below guessing uniformly over the vocabulary (ln V nats).
    assert last < first - 0.5 and last < 0.85 * math.log(saved["model"]["vocab_size"]), losses
    assert any(name.startswith("experts/layer03_expert") for name in steps[30])
    assert "train/load_balancing_loss" in steps[1]  # (the 25-patient demo has no validation split)
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    assert saved["train"]["train_iters"] == 30 and isinstance(saved["model"]["vocab_size"], int)


@pytest.mark.parametrize("layout", ["data", "tensor", "expert", "pipeline"])
def test_two_process_layouts_train(tmp_path, synthetic_preprocessed, layout):
    sizes = {"data": [], "tensor": ["--parallel.tensor_model_parallel_size", "2"],
             "expert": ["--parallel.expert_model_parallel_size", "2"], "pipeline": ["--parallel.pipeline_model_parallel_size", "2"]}  # fmt: skip
    config = write_run_config(tmp_path / "run.yaml", synthetic_preprocessed, tmp_path / "run", train={"train_iters": 12, "eval_interval": 0})
    done = run(config, *sizes[layout], "--checkpoint.save_interval", "0", nproc=2)
    assert done.returncode == 0, done.stderr[-3000:]
    losses = [row["train/lm_loss"] for _, row in sorted(metrics(tmp_path / "run").items())]
    assert len(losses) == 12 and losses[-1] < losses[0]


def test_tensor_and_pipeline_parallel_train_together(tmp_path, synthetic_preprocessed):
    """TP=2 x PP=2 (sequence parallel): the second stage gets the MoE padding mask cut to its part
    of the sequence (Megatron-Core 0.16 cuts it only on the first stage)."""
    config = write_run_config(tmp_path / "run.yaml", synthetic_preprocessed, tmp_path / "run",
                              train={"train_iters": 3, "eval_interval": 0})  # fmt: skip
    layout = ["--parallel.tensor_model_parallel_size", "2", "--parallel.pipeline_model_parallel_size", "2"]
    done = run(config, *layout, "--checkpoint.save_interval", "0", nproc=4)
    assert done.returncode == 0, done.stderr[-3000:]
    steps = metrics(tmp_path / "run")
    assert sorted(steps) == [1, 2, 3] and all(math.isfinite(row["train/load_balancing_loss"]) for row in steps.values())


def logged_rows(save_dir: Path) -> list[dict]:
    """metrics.jsonl's rows in file order, without the timings (which no two runs share)."""
    rows = [json.loads(line) for line in (save_dir / "metrics.jsonl").read_text().splitlines()]
    return [{key: value for key, value in row.items() if not key.startswith("perf/")} for row in rows]


def last_logged_step(save_dir: Path) -> int:
    """The newest step in a running run's metrics.jsonl (0 before any); a line being written is skipped."""
    path, step = save_dir / "metrics.jsonl", 0
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            step = max(step, json.loads(line)["step"])
        except json.JSONDecodeError:
            pass
    return step


def tensorboard_scalars(save_dir: Path, tag: str) -> list[tuple[int, float]]:
    """(step, value) of `tag` as tensorboard reads the run's event files (applying their purges)."""
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    events = EventAccumulator(str(save_dir / "tensorboard"), size_guidance={SCALARS: 0})
    events.Reload()
    return [(event.step, event.value) for event in events.Scalars(tag)]


def processes_in_group(group: int) -> list[str]:
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        try:
            if os.getpgid(process.pid) == group and process.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(" ".join(process.info["cmdline"] or []))
        except (ProcessLookupError, psutil.Error):
            continue
    return found


# With dropout, so the random stream after a restored RNG state must be the uninterrupted run's.
DROPOUT = {"hidden_dropout": 0.1}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, synthetic_preprocessed) -> Path:
    """The save dir of a 20-step run with dropout, checkpoints at steps 10 and 20, never interrupted."""
    root = tmp_path_factory.mktemp("uninterrupted")
    done = run(write_run_config(root / "whole.yaml", synthetic_preprocessed, root / "whole", model=DROPOUT))
    assert done.returncode == 0, done.stderr[-3000:]
    return root / "whole"


def assert_same_final_weights(save_dir: Path, reference: Path) -> None:
    """The step-20 checkpoints of two runs hold bit-identical weights."""
    from sparseehr_mcore.checkpointing.layout import read_metadata
    from sparseehr_mcore.checkpointing.weights import load_weights
    from sparseehr_mcore.config import ParallelConfig
    from sparseehr_mcore.model.builder import build_model

    weights = []
    for directory in (save_dir / "iter_0000020", reference / "iter_0000020"):
        model = build_model(read_metadata(directory).model, ParallelConfig())
        load_weights(model, directory)
        weights.append(model.state_dict())
    for key, tensor in weights[1].items():
        if not key.endswith("_extra_state"):
            assert tensor.equal(weights[0][key]), key


def test_killed_run_resumes_to_the_same_loss_weights_and_logs(tmp_path, synthetic_preprocessed, uninterrupted, single_process_world):
    killed = write_run_config(tmp_path / "killed.yaml", synthetic_preprocessed, tmp_path / "killed", model=DROPOUT)
    process = start_in_own_group(*command_and_env(killed))
    try:
        # Killed a few steps after its checkpoint at step 10: the steps it logged past it run again.
        latest = tmp_path / "killed" / "latest_iteration.txt"
        deadline = time.monotonic() + 300
        while not (latest.is_file() and latest.read_text().strip() == "10" and last_logged_step(tmp_path / "killed") >= 13):
            assert process.poll() is None, "the run ended before its checkpoint at step 10 and step 13"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)  # the training process alone, as `kill -9 PID` does
        process.wait()  # (not communicate: a helper left behind would hold its pipes open)
        assert not (tmp_path / "killed" / "iter_0000020").exists(), "the kill came too late to interrupt the run"
        # Nothing the run started outlives it (Megatron-Core's checkpoint-writer helper once did).
        deadline = time.monotonic() + 10
        while processes_in_group(process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not processes_in_group(process.pid)
    finally:
        kill_group(process)

    resumed = run(killed)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout
    assert "rows of steps after 10 (they run again)" in resumed.stdout, resumed.stdout[-3000:]

    # The logs equal the uninterrupted run's: each step once, with every logged value (loss, aux
    # loss, lr, grad norm, expert shares, validation) of the steps before and after the interruption.
    assert logged_rows(tmp_path / "killed") == logged_rows(uninterrupted)
    assert "valid/lm_loss" in metrics(uninterrupted)[20]
    for tag in ("train/lm_loss", "valid/lm_loss"):
        assert tensorboard_scalars(tmp_path / "killed", tag) == tensorboard_scalars(uninterrupted, tag), tag
    assert [step for step, _ in tensorboard_scalars(uninterrupted, "train/lm_loss")] == list(range(1, 21))
    assert_same_final_weights(tmp_path / "killed", uninterrupted)


def damaged_copy(run_dir: Path, tmp_path: Path, *, damage: str = "truncated") -> tuple[Path, Path]:
    """A copy of a finished run whose latest checkpoint (step 20) is damaged, and the damaged file.

    "truncated": one .distcp file cut in half. "unrecorded": as a checkpoint written before file
    records existed, without its record, and with bytes of common.pt zeroed (its size kept), so
    that only the load itself can fail.
    """
    copy = tmp_path / "damaged"
    shutil.copytree(run_dir, copy)
    config = yaml.safe_load((copy / "run_config.yaml").read_text())
    config["checkpoint"]["save_dir"] = str(copy)  # the copy continues in itself
    (copy / "run_config.yaml").write_text(yaml.safe_dump(config))
    latest = copy / "iter_0000020"
    if damage == "truncated":
        damaged = sorted(latest.glob("*.distcp"))[0]
        damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    else:
        (latest / FILES_RECORD).unlink()
        damaged = latest / "common.pt"
        content = bytearray(damaged.read_bytes())
        content[len(content) // 4 : len(content) // 2] = bytes(len(content) // 2 - len(content) // 4)
        damaged.write_bytes(bytes(content))
    return copy, damaged


@pytest.mark.parametrize("damage", ["truncated", "unrecorded"])
def test_damaged_latest_checkpoint_falls_back_to_the_one_before(tmp_path, uninterrupted, single_process_world, damage):
    copy, damaged = damaged_copy(uninterrupted, tmp_path, damage=damage)
    resumed = run(copy / "run_config.yaml")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    said = [line for line in resumed.stdout.splitlines() if "the latest checkpoint cannot be read" in line]
    assert len(said) == 1 and "continued from" in said[0] and "iter_0000010" in said[0], resumed.stdout[-3000:]
    # The file when the record names it, else the checkpoint with Megatron-Core's error.
    assert str(damaged) in said[0] if damage == "truncated" else f"cannot read {damaged.parent}: " in said[0], said
    # Steps 11-20 trained again from the step-10 checkpoint: the same logs and weights as never damaged.
    assert logged_rows(copy) == logged_rows(uninterrupted)
    assert_same_final_weights(copy, uninterrupted)


def test_two_ranks_take_the_same_fallback(tmp_path, uninterrupted):
    """Rank 0 checks the files and both ranks continue from the same checkpoint (here under TP=2,
    so the optimizer state is resharded and the RNG states start afresh: not bit-identical)."""
    copy, shard = damaged_copy(uninterrupted, tmp_path)
    done = run(copy / "run_config.yaml", "--parallel.tensor_model_parallel_size", "2", nproc=2)
    assert done.returncode == 0, done.stderr[-3000:]
    said = [line for line in done.stdout.splitlines() if "the latest checkpoint cannot be read" in line]
    assert len(said) == 1 and str(shard) in said[0] and "iter_0000010" in said[0], done.stdout[-3000:]
    assert sorted(metrics(copy)) == list(range(1, 21))


def test_damaged_latest_checkpoint_without_fallback_stops_naming_the_file(tmp_path, uninterrupted):
    copy, shard = damaged_copy(uninterrupted, tmp_path)
    done = run(copy / "run_config.yaml", "--checkpoint.fallback", "false")
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(shard) in errors[0] and "checkpoint.fallback" in errors[0], done.stderr[-3000:]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "args, nproc, message",
    [
        (["--parallel.tensor_model_parallel_size", "3"], 1, "world size 1 is not divisible by tensor x pipeline parallel size"),
        (["--model.vocab_size", "99"], 1, "the tokenizer has .* tokens but model.vocab_size is 99"),
        (["--data.preprocessed_dirs", "[/nonexistent]"], 1, "no manifest.json|not found|does not exist"),
        (["--model.hidden_size", "128", "--checkpoint.load_dir", "{whole}"], 1, "holds another model shape"),
    ],
)
def test_bad_configs_fail_before_compute(tmp_path, synthetic_preprocessed, args, nproc, message):
    import re

    whole = tmp_path / "whole"
    config = write_run_config(tmp_path / "run.yaml", synthetic_preprocessed, tmp_path / "run", train={"train_iters": 3, "eval_interval": 0})
    if "{whole}" in " ".join(args):
        setup = write_run_config(tmp_path / "setup.yaml", synthetic_preprocessed, whole, train={"train_iters": 3, "eval_interval": 0})
        assert run(setup).returncode == 0
    done = run(config, *[a.replace("{whole}", str(whole)) for a in args], nproc=nproc)
    assert done.returncode != 0
    assert re.search(message, done.stderr), done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # nothing trained


def test_an_error_under_torchrun_is_printed_once(tmp_path, synthetic_preprocessed):
    config = write_run_config(tmp_path / "run.yaml", synthetic_preprocessed, tmp_path / "run", train={"train_iters": 3, "eval_interval": 0})
    done = run(config, "--model.vocab_size", "99", nproc=2)
    assert done.returncode != 0
    assert done.stderr.count("error: the tokenizer has") == 1, done.stderr[-3000:]  # by rank 0, not once per rank
    assert "[rank0]: Traceback" not in done.stderr and "[rank1]: Traceback" not in done.stderr


def test_checkpoint_continues_under_another_layout(tmp_path, synthetic_preprocessed):
    first = write_run_config(tmp_path / "first.yaml", synthetic_preprocessed, tmp_path / "first", train={"train_iters": 4, "eval_interval": 0})
    assert run(first).returncode == 0
    second = write_run_config(tmp_path / "second.yaml", synthetic_preprocessed, tmp_path / "second", train={"train_iters": 8, "eval_interval": 0})
    done = run(second, "--checkpoint.load_dir", str(tmp_path / "first"), "--parallel.tensor_model_parallel_size", "2", nproc=2)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resumed from" in done.stdout and "RNG states are not restored" in done.stdout
    steps = metrics(tmp_path / "second")
    assert sorted(steps) == [5, 6, 7, 8]  # continued at the checkpoint's step, optimizer state resharded
    assert steps[5]["train/lm_loss"] < metrics(tmp_path / "first")[1]["train/lm_loss"]

    # Optimizer state does not map across a change of expert parallelism: a clear refusal, then the
    # weights alone do load.
    expert = ["--checkpoint.load_dir", str(tmp_path / "first"), "--parallel.expert_model_parallel_size", "2",
              "--checkpoint.save_dir", str(tmp_path / "third")]  # fmt: skip
    refused = run(second, *expert, nproc=2)
    assert refused.returncode != 0
    assert "cannot map optimizer state across a change of expert-parallel size" in refused.stderr, refused.stderr[-2000:]
    assert "[rank0]: Traceback" not in refused.stderr  # torchrun itself reports the failed child
    done = run(second, *expert, "--checkpoint.load_optimizer", "false", nproc=2)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "training starts at step 0" in done.stdout


def test_save_dir_is_checked_before_compute_and_overwrite_starts_afresh(tmp_path, synthetic_preprocessed):
    """Issue 13, item 3: an unwritable save dir or one holding files no run writes is refused in one
    line; --checkpoint.overwrite true empties it (earlier checkpoints included) and trains afresh."""
    (tmp_path / "file").write_text("in the way")
    short = {"train_iters": 2, "warmup_iters": 0, "eval_interval": 0}
    blocked = write_run_config(tmp_path / "blocked.yaml", synthetic_preprocessed, tmp_path / "file" / "run", train=short)
    done = run(blocked)
    assert done.returncode == 2 and "cannot create it" in done.stderr, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and not (tmp_path / "file").is_dir()

    save_dir = tmp_path / "run"
    (save_dir / "iter_0000099").mkdir(parents=True)  # an earlier run's interrupted save: its own
    (save_dir / "notes.txt").write_text("not a run's")
    config = write_run_config(tmp_path / "run.yaml", synthetic_preprocessed, save_dir, train=short)
    done = run(config)
    assert done.returncode == 2 and "did not write (notes.txt)" in done.stderr, done.stderr[-3000:]
    assert "--checkpoint.overwrite true" in done.stderr and not (save_dir / "metrics.jsonl").exists()
    done = run(config, "--checkpoint.overwrite", "true")
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in save_dir.iterdir()) == [
        "iter_0000002", "latest_iteration.txt", "metrics.jsonl", "run_config.yaml", "tensorboard"]  # fmt: skip
    assert sorted(metrics(save_dir)) == [1, 2]
