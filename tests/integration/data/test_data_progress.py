"""Progress bars: one per phase on a terminal, none when piped or with --quiet; --help shows defaults.

The tool runs as a child process with stderr on a pseudo-terminal (`pty`) or a pipe, as a user's
shell or a batch job would run it.
"""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

from sparseehr_mcore.data.cli import build_parser

PHASE_BARS = ("stage: 100%", "build: 100%", "vocab: 100%", "tokenize: 100%", "finish: merge: 100%")


def run_tool(tool, argv: list[str], *, terminal: bool) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of tools/preprocess_ehr.py, its stderr a terminal or a pipe."""
    command = [sys.executable, str(tool), *argv]
    if not terminal:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        return done.returncode, done.stdout, done.stderr
    controller, terminal_end = pty.openpty()
    # A new pseudo-terminal is 0 columns wide, and tqdm draws nothing in no width: size it as a window.
    fcntl.ioctl(terminal_end, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=terminal_end, stdin=subprocess.DEVNULL)
    os.close(terminal_end)
    drawn = []
    while True:
        try:
            chunk = os.read(controller, 1 << 16)
        except OSError:  # EIO: the child has exited and closed its end
            break
        if not chunk:
            break
        drawn.append(chunk)
    os.close(controller)
    stdout = child.stdout.read().decode()
    child.stdout.close()
    return child.wait(timeout=300), stdout, b"".join(drawn).decode(errors="replace")


def test_bars_on_a_terminal_none_when_piped_or_quiet(tmp_path, preprocess_tool):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "events.csv").write_text(
        "patient_id,date,code_system,code\np1,2020-01-01,ICD10CM,E11.9\np1,2020-02-01,CPT,99213\n"
        "p2,2021-03-01,ICD10CM,I10\n"
    )
    argv = ["--source", "events", "--input", str(tmp_path / "in"), "--split", "1,0,0"]
    status, stdout, drawn = run_tool(preprocess_tool, [*argv, "--output-dir", str(tmp_path / "tty")], terminal=True)
    assert status == 0, drawn
    for bar in PHASE_BARS:
        assert bar in drawn, (bar, drawn)
    assert "events 3/3 kept" in stdout  # the summary stays on stdout

    status, _, piped = run_tool(preprocess_tool, [*argv, "--output-dir", str(tmp_path / "piped")], terminal=False)
    assert status == 0 and piped == ""

    quiet_argv = [*argv, "--output-dir", str(tmp_path / "quiet"), "--quiet"]
    status, _, quiet = run_tool(preprocess_tool, quiet_argv, terminal=True)
    assert status == 0 and quiet == ""
    # The bars change nothing on disk.
    for name in ("train.bin", "train.idx", "manifest.json", "tokenizer/vocab.json"):
        assert (tmp_path / "tty" / name).read_bytes() == (tmp_path / "piped" / name).read_bytes() == (
            tmp_path / "quiet" / name).read_bytes()


def test_help_shows_every_default():
    parser = build_parser()
    text = " ".join(parser.format_help().split())  # unwrapped
    for action in parser._actions:
        if action.required or not action.option_strings or action.dest == "help":
            continue
        shown = "none" if action.default in (None, "") else action.default
        assert f"(default: {shown})" in text, action.dest
    assert "(default: 0.9,0.05,0.05)" in text and "(default: 120)" in text
