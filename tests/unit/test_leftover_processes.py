"""The session-end check of tests/leftover_processes.py: a process a test leaves behind, even one
orphaned by its own parent, fails the session by name and is killed."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psutil

TESTS_DIR = Path(__file__).resolve().parents[1]

LEAKING_TESTS = '''
import subprocess, sys

def test_leaks_a_child():
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "{marker}-child"])

def test_leaks_an_orphan():
    # The middle process exits at once: its sleeping child is orphaned, no longer pytest's child.
    spawn = "import subprocess, sys; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)', '{marker}-orphan'])"
    subprocess.run([sys.executable, "-c", spawn], check=True)
'''

CLEAN_TESTS = '''
import subprocess, sys

def test_waits_for_its_child():
    subprocess.run([sys.executable, "-c", "pass"], check=True)
'''


def run_session(tmp_path: Path, source: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_inner.py").write_text(source)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "pytest", "-p", "leftover_processes", "-p", "no:cacheprovider",
               "--rootdir", str(tmp_path), "-q", str(tmp_path / "test_inner.py")]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)


def running_with(marker: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        if any(marker in part for part in process.info["cmdline"] or []) and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process)
    return found


def test_a_leaked_and_an_orphaned_process_fail_the_session_and_are_killed(tmp_path):
    marker = f"leak-{uuid.uuid4().hex[:8]}"
    done = run_session(tmp_path, LEAKING_TESTS.replace("{marker}", marker))
    report = done.stdout + done.stderr
    assert done.returncode != 0, report
    assert "2 passed" in report  # the tests themselves pass: the session fails for the leftovers
    assert "2 process(es) started by the tests outlived them" in report, report
    assert f"{marker}-child" in report and f"{marker}-orphan" in report, report
    assert not running_with(marker)


def test_a_session_that_leaves_nothing_passes(tmp_path):
    done = run_session(tmp_path, CLEAN_TESTS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "outlived" not in done.stdout + done.stderr
