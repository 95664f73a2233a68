"""Run a worker script under torchrun (or plain python for one process) and collect its JSON output.

Every launch gets a process group of its own, and the whole group is killed when the launch times
out or the test fails while it runs: killing torchrun alone would orphan its workers.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

WORKERS = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_worker(
    script: str, args: list[str], *, nproc: int = 1, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run `WORKERS/script` with `args` on `nproc` gloo processes; returns the finished process."""
    if nproc == 1:
        command = [sys.executable, str(WORKERS / script), *args]
    else:
        command = [
            sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
            f"--master_port={free_port()}", str(WORKERS / script), *args,
        ]  # fmt: skip
    # A fresh world: nothing of a launcher that may be running pytest itself leaks into the workers.
    launcher_keys = {"RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"}
    full_env = {key: value for key, value in os.environ.items() if key not in launcher_keys}
    full_env.update({"OMP_NUM_THREADS": "1", **(env or {})})
    return run_in_own_group(command, env=full_env, timeout=timeout)


def start_in_own_group(command: list[str], env: dict[str, str]) -> subprocess.Popen:
    """Start `command` (output captured as text) as the leader of a new process group."""
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL every process of `process`'s group (its children and theirs), then reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # the group is empty: everything in it has exited
    process.wait()
    # Not communicate(): a process outside the group may hold the pipes open, and reading to EOF would hang.
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def run_in_own_group(command: list[str], *, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """Run `command` to its end in a process group of its own; on a timeout (or any failure while
    waiting) kill the whole group before raising."""
    process = start_in_own_group(command, env=env)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except BaseException:
        kill_group(process)
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def read_rank_results(directory: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(directory.glob("rank*.json"))]
