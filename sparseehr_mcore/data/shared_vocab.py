"""One frozen vocabulary over several preprocessed sources (`tools/build_vocab.py`).

Each preprocessed directory saves its training split's term counts beside its vocabulary
(`tokenizer/term_counts.json`, every term, before `--min-count`). Their sum is the term count of
the union of the training splits, so the shared vocabulary is what the tokenizer plugin builds
from it (`from_counts`, its own ordering and `min_count` rule). Each directory is then encoded
with it by `tools/preprocess_ehr.py --retokenize` (`data/retokenize.py`), and training blends them.

The sources must agree on everything that gives a token its meaning: the tokenizer plugin and
version, the bundle order, and the harmonisation rules (rules version, prefix lengths, switches).
The GEM files may differ (package or CMS files): they map to the same code systems.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

from sparseehr_mcore.data.ledger import PreprocessError
from sparseehr_mcore.data.manifest import MANIFEST_FILE, read_manifest, write_json_atomic
from sparseehr_mcore.data.preprocess import save_new_tokenizer
from sparseehr_mcore.data.run_config import TOKENIZER_DIR
from sparseehr_mcore.tokenization.base import TERM_COUNTS_FILE, load_term_counts
from sparseehr_mcore.tokenization.registry import resolve

SOURCES_FILE = "vocab_sources.json"  # what the shared vocabulary was built from, beside it


def _settings(manifest: dict) -> dict:
    """What must be equal across the sources of one vocabulary."""
    tokenizer, harmonisation = manifest["tokenizer"], manifest["harmonisation"]
    return {"tokenizer": f"{tokenizer['name']} {tokenizer['version']}", "bundle_order": tokenizer["bundle_order"],
            "harmonisation": {"rules_version": harmonisation["rules_version"], **harmonisation["config"]}}


def _read_source(directory: Path) -> tuple[dict, dict[str, int]]:
    if not (directory / MANIFEST_FILE).is_file():
        raise PreprocessError(f"--inputs {directory}: no {MANIFEST_FILE} (not a finished preprocessing output)")
    manifest = read_manifest(directory)
    if manifest["tokenizer"]["reused"]:
        raise PreprocessError(
            f"--inputs {directory}: its vocabulary was reused (--tokenizer-dir or --retokenize), so its "
            f"{TERM_COUNTS_FILE} are not its own; give the directory preprocessed with a vocabulary of its own"
        )
    counts = load_term_counts(directory / TOKENIZER_DIR)
    if counts is None:
        raise PreprocessError(f"--inputs {directory}: no {TOKENIZER_DIR}/{TERM_COUNTS_FILE}")
    return manifest, counts


def build_shared_vocab(inputs: list[Path], output: Path, *, min_count: int = 1):
    """Merge the term counts of `inputs` into one tokenizer saved in `output`; returns it.

    Raises:
        PreprocessError: an input is not a finished, self-built preprocessing output, or the
            inputs disagree on the tokenizer or the harmonisation rules (all of them listed).
    """
    if not inputs:
        raise PreprocessError("--inputs: give at least one preprocessed directory")
    if min_count < 1:
        raise PreprocessError(f"--min-count must be >= 1, got {min_count}")
    if len({Path(p).resolve() for p in inputs}) != len(inputs):
        raise PreprocessError("--inputs: a directory is given twice (its counts would count twice)")
    sources = [(Path(directory), *_read_source(Path(directory))) for directory in inputs]
    first = _settings(sources[0][1])
    differing = [f"{directory}: {json.dumps(_settings(manifest), sort_keys=True)}"
                 for directory, manifest, _ in sources[1:] if _settings(manifest) != first]
    if differing:
        raise PreprocessError(
            f"--inputs disagree on the tokenizer or the harmonisation; {sources[0][0]} has "
            f"{json.dumps(first, sort_keys=True)}, but " + "; ".join(differing)
        )
    terms: Counter = Counter()
    for _, _, counts in sources:
        terms.update(counts)
    output = Path(output)
    if output.exists() and any(output.iterdir()):
        raise PreprocessError(f"--output {output}: exists and is not empty")
    plugin = sources[0][1]["flags"]["tokenizer"]  # the spec that built it ("typed-codes", "module:Class", ...)
    installed = resolve(plugin)
    if first["tokenizer"] != f"{installed.name} {installed.version}":
        raise PreprocessError(
            f"--inputs were tokenized by {first['tokenizer']}; the installed {plugin} is version {installed.version}"
        )
    tokenizer = save_new_tokenizer(output, terms, plugin=plugin, min_count=min_count,
                                   bundle_order=first["bundle_order"])
    write_json_atomic(output / SOURCES_FILE, {
        "min_count": min_count,
        # No paths (the file's bytes do not depend on where the inputs lie): what each input was.
        "sources": [{"source": manifest["source"], "train_patients": manifest["counts"]["patients_written"]["train"],
                     "terms": len(counts),
                     "manifest_sha256": hashlib.sha256((directory / MANIFEST_FILE).read_bytes()).hexdigest()}
                    for directory, manifest, counts in sources],
    })
    return tokenizer
