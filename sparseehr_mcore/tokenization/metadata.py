"""Save and reopen a tokenizer directory: plugin files plus Megatron-Core's `tokenizer_metadata.json`.

The metadata has Megatron-Core's keys (`library`, `class_name`, `class_path`, `model_type`,
`chat_template`) so Megatron tooling can read which class to build; `plugin` and `plugin_version`
name the registry entry our loader uses.
"""

from __future__ import annotations

import json
from pathlib import Path

from sparseehr_mcore.tokenization.registry import resolve

METADATA_FILE = "tokenizer_metadata.json"
LIBRARY = "sparseehr-mcore"


def save_tokenizer(tokenizer, directory: Path) -> None:
    """Write the plugin's files and the Megatron-style metadata (written last) to `directory`."""
    directory = Path(directory)
    tokenizer.save(directory)
    metadata = {
        "library": LIBRARY,
        "class_name": type(tokenizer).__name__,
        "class_path": type(tokenizer).__module__,
        "model_type": None,
        "chat_template": None,
        "plugin": tokenizer.name,
        "plugin_version": tokenizer.version,
    }
    (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def load_tokenizer(directory: Path):
    """Reopen a tokenizer saved by `save_tokenizer` (the frozen vocabulary of a pretraining run)."""
    directory = Path(directory)
    path = directory / METADATA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{directory}: no {METADATA_FILE} (not a saved tokenizer directory)")
    metadata = json.loads(path.read_text(encoding="utf-8"))
    plugin = resolve(metadata["plugin"])
    if plugin.version != metadata["plugin_version"]:
        raise ValueError(
            f"{directory}: saved by {metadata['plugin']} version {metadata['plugin_version']}, "
            f"installed version is {plugin.version}"
        )
    return plugin.load(directory)
