"""Save and reopen a tokenizer directory: plugin files plus `tokenizer_metadata.json`.

The metadata file has Megatron-Core's name and keys (`library`, `class_name`, `class_path`,
`model_type`, `chat_template`), which say what class the directory holds; `plugin` and
`plugin_version` name the registry entry, and `loader` the function that reopens the directory
(`load_tokenizer` below, as "module:function").

Megatron-Core's own `MegatronTokenizer.from_pretrained` cannot reopen it, and the file does not
pretend otherwise: that loader builds text tokenizers of a fixed list of libraries (sentencepiece,
huggingface, megatron, tiktoken, byte-level, null), and in 0.16.1 its custom-class route calls
`getattr` on the class path *string*, so no JSON file can name a class for it to build.
`tests/unit/test_tokenizer_metadata.py` checks both facts.
"""

from __future__ import annotations

import json
from pathlib import Path

from sparseehr_mcore.tokenization.registry import resolve

METADATA_FILE = "tokenizer_metadata.json"
LIBRARY = "sparseehr-mcore"  # not one of Megatron-Core's tokenizer libraries (see above)
LOADER = "sparseehr_mcore.tokenization.metadata:load_tokenizer"


def save_tokenizer(tokenizer, directory: Path) -> None:
    """Write the plugin's files and the metadata (written last) to `directory`."""
    directory = Path(directory)
    tokenizer.save(directory)
    metadata = {
        "library": LIBRARY,
        "class_name": type(tokenizer).__name__,
        "class_path": type(tokenizer).__module__,
        "model_type": None,
        "chat_template": None,
        "loader": LOADER,
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
