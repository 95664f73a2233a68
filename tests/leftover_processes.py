"""A pytest plugin that fails the session when a process started during it is still alive at the end.

`tests/conftest.py` loads its hooks; a run of pytest elsewhere loads it with `-p leftover_processes`
(tests/ on PYTHONPATH), as its own test does.

A child that outlives its parent is re-parented away from it, so the pytest process would never see
it among its children: on Linux this process becomes a child subreaper (prctl), so every orphan of
its descendants (a helper of a training run killed with SIGKILL, a torchrun worker whose launcher
was killed on a timeout) becomes its child again and is found here.
"""

from __future__ import annotations

import ctypes
import multiprocessing.resource_tracker
import sys

import psutil
import pytest

GRACE_SECONDS = 5.0  # time for children that are shutting down anyway (a pool's workers) to exit
_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Make orphaned descendants of this process its children again (Linux only); whether it could."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def _own_helpers() -> set[int]:
    """Processes that belong to the pytest process itself and end with it: multiprocessing's
    resource tracker, started once by the first spawn pool and kept for the interpreter's life."""
    tracker_pid = getattr(multiprocessing.resource_tracker._resource_tracker, "_pid", None)
    return {tracker_pid} if tracker_pid else set()


def _describe(process: psutil.Process) -> str:
    try:
        command = " ".join(process.cmdline()) or process.name()
    except psutil.Error:
        command = "?"
    return f"pid {process.pid} ({command[:160]})"


def leftover_children(grace_seconds: float = GRACE_SECONDS) -> list[str]:
    """Kill the descendants of this process still alive after `grace_seconds`; describe each one.

    Zombies (exited, not yet reaped) are gone already and are not counted.
    """
    helpers = _own_helpers()
    children = [child for child in psutil.Process().children(recursive=True) if child.pid not in helpers]
    _, alive = psutil.wait_procs(children, timeout=grace_seconds)
    leftovers = []
    for process in alive:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            leftovers.append(_describe(process))
            process.kill()  # SIGKILL: the leaks seen so far ignored SIGTERM
        except psutil.NoSuchProcess:
            continue
    return leftovers


def pytest_sessionstart(session: pytest.Session) -> None:
    become_subreaper()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leftovers = leftover_children()
    if not leftovers:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"{len(leftovers)} process(es) started by the tests outlived them (now killed):", *leftovers]
    for line in lines:
        if reporter is not None:
            reporter.write_line(line, red=True)
        else:
            print(line, file=sys.stderr)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
