"""Fixtures for the data pipeline's end-to-end tests: the real tool, called as a function."""

from __future__ import annotations

from pathlib import Path

import pytest
from script_loading import load_script

TOOLS = Path(__file__).resolve().parents[3] / "tools"


def tool_main(name: str):
    """`tools/<name>.py`'s `main(argv)`, loaded from its file (tools/ is not a package)."""
    return load_script(f"tools/{name}.py").main


@pytest.fixture(scope="session")
def preprocess_tool() -> Path:
    """The path of `tools/preprocess_ehr.py`, for tests that run it as a child process."""
    return TOOLS / "preprocess_ehr.py"


@pytest.fixture(scope="session")
def preprocess_main():
    return tool_main("preprocess_ehr")


@pytest.fixture(scope="session")
def build_vocab_main():
    return tool_main("build_vocab")


@pytest.fixture(scope="session")
def shared_outputs(shared_data, preprocess_main, tmp_path_factory):
    """The three real datasets preprocessed once per session: name -> output directory."""
    inputs = {
        "mimic-iv": (shared_data / "mimic-iv-demo-2.2-dev" / "hosp", []),
        "mimic-iii": (shared_data / "mimic-iii-demo-1.4", ["--gem-dir", str(shared_data / "cms-gems-2018")]),
        "omop": (shared_data / "synpuf-omop-50", []),
    }
    outputs = {}
    for source, (input_dir, extra) in inputs.items():
        output = tmp_path_factory.mktemp(source) / "out"
        status = preprocess_main(
            ["--source", source, "--input", str(input_dir), "--output-dir", str(output), *extra]
        )
        assert status == 0
        outputs[source] = output
    return outputs
