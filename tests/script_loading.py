"""Load one of the repository's scripts (tools/, examples/, benchmarks/: folders, not packages) as a
module, so tests call its `main(argv)` in process."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[1]


def load_script(relative_path: str) -> ModuleType:
    """The module of `REPO_ROOT / relative_path`, e.g. `load_script("tools/convert_checkpoint.py")`."""
    path = REPO_ROOT / relative_path
    spec = importlib.util.spec_from_file_location(f"{path.stem}_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
