"""Run a worker script under torchrun (or plain python for one process) and collect its JSON output."""

from __future__ import annotations

import json
import os
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
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=full_env)


def read_rank_results(directory: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(directory.glob("rank*.json"))]
