"""The GPU image and the GPU smoke script, checked where no GPU and no docker engine exist: what the
Dockerfile installs (never PyPI's `apex`, megatron-core in the documented range, nothing that
replaces the image's torch), and the smoke script's syntax, its refusal without CUDA, and (slow) its
whole pipeline on CPU with the tiny preset."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch
from packaging.requirements import Requirement

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "docker" / "Dockerfile"
SMOKE = REPO_ROOT / "scripts" / "gpu_smoke.sh"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with continuation lines joined and heredoc bodies left out."""
    instructions, pending, heredoc_end = [], "", None
    for line in DOCKERFILE.read_text().splitlines():
        if heredoc_end is not None:
            heredoc_end = None if line.strip() == heredoc_end else heredoc_end
            continue
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip("\\").strip() + " "
        heredoc = re.search(r"<<-?'?(\w+)'?", line)
        if heredoc:
            heredoc_end = heredoc.group(1)
        if not line.endswith("\\"):
            keyword, _, rest = pending.strip().partition(" ")
            instructions.append((keyword.upper(), rest))
            pending = ""
    return instructions


def build_args() -> dict[str, str]:
    args = {}
    for keyword, rest in dockerfile_instructions():
        if keyword == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            args[name] = shlex.split(value)[0]
    return args


def pip_installs() -> list[list[str]]:
    """The argument lists of every `pip install` in a RUN, build args substituted."""
    args = build_args()
    installs = []
    for keyword, rest in dockerfile_instructions():
        if keyword != "RUN":
            continue
        lexer = shlex.shlex(re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), rest), posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        commands: list[list[str]] = [[]]
        for token in lexer:
            if token in ("&&", "||", ";", "|"):
                commands.append([])
            else:
                commands[-1].append(token)
        for words in commands:
            if words[:2] == ["pip", "install"] or words[:4] == ["python", "-m", "pip", "install"]:
                installs.append(words[words.index("install") + 1 :])
    return installs


def requirements(words: list[str]) -> list[Requirement]:
    return [Requirement(word) for word in words if not word.startswith("-") and word != "."]


def test_base_is_an_ngc_pytorch_image():
    assert dockerfile_instructions()[0][0] == "ARG"  # the tag is a build arg: --build-arg NGC_PYTORCH=...
    assert re.fullmatch(r"nvcr\.io/nvidia/pytorch:\d\d\.\d\d-py3", build_args()["NGC_PYTORCH"])
    assert ("FROM", "${NGC_PYTORCH}") in dockerfile_instructions()


def test_pypi_apex_and_torch_are_never_installed():
    installed = {req.name.lower() for words in pip_installs() for req in requirements(words)}
    assert installed, "no pip install found: the parser is broken"
    assert "apex" not in installed  # PyPI's "apex" is an unrelated web toolkit; NVIDIA apex comes with the image
    assert not installed & {"torch", "transformer-engine", "transformer_engine", "nvidia-apex"}


def test_megatron_core_is_in_the_documented_range_and_cannot_pull_a_torch():
    pinned = [(words, req) for words in pip_installs() for req in requirements(words) if req.name == "megatron-core"]
    assert len(pinned) == 1
    words, requirement = pinned[0]
    assert "--no-deps" in words
    declared = next(
        Requirement(dep) for dep in tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
        if dep.startswith("megatron-core")
    )  # fmt: skip
    assert requirement.specifier == declared.specifier
    for version, allowed in (("0.16.0", False), ("0.16.1", True), ("0.19.2", True), ("0.20.0", False)):
        assert requirement.specifier.contains(version) is allowed, version


def test_the_project_goes_in_without_dependencies_and_copies_what_exists():
    assert any(words[-2:] == ["-e", "."] and "--no-deps" in words for words in pip_installs())
    for keyword, rest in dockerfile_instructions():
        if keyword == "COPY":
            for source in shlex.split(rest)[:-1]:
                assert (REPO_ROOT / source).exists(), f"COPY {source}: not in the repository"


def test_smoke_script_parses():
    assert subprocess.run(["bash", "-n", str(SMOKE)], capture_output=True).returncode == 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_smoke_script_stops_without_cuda():
    done = subprocess.run(["bash", str(SMOKE)], capture_output=True, text=True, env={**os.environ, "PYTHON": sys.executable})
    assert done.returncode == 3
    assert "no CUDA" in done.stderr and "docker" in done.stderr
    assert "==" not in done.stdout  # nothing was started


@pytest.mark.slow
def test_smoke_script_runs_its_pipeline_on_cpu(tmp_path):
    done = subprocess.run(
        ["bash", str(SMOKE), "--allow-cpu", "--preset", "tiny", "--seq-length", "32", "--steps", "5", "--patients", "40",
         "--micro-batch-size", "2", "--global-batch-size", "2", "--skip-tests", "--workdir", str(tmp_path)],
        capture_output=True, text=True, env={**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r"^SMOKE tokens/s: median [\d,]+ over steps 4-5", done.stdout, re.M), done.stdout[-2000:]
    assert "SMOKE peak GPU memory: n/a (no GPU)" in done.stdout
