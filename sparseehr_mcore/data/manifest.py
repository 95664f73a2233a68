"""The manifest: what went in, which rules and tokenizer, what came out, and every count.

Written last and atomically, so a directory with `manifest.json` is complete. It holds no
timestamps, absolute paths or worker counts, so the same input and flags give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from sparseehr_mcore.data.ledger import DROP_REASONS
from sparseehr_mcore.data.partition import SPLITS

MANIFEST_FILE = "manifest.json"
SCHEMA_VERSION = 1


def file_sha256(path: Path, *, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def hash_inputs(tables) -> list[dict]:
    """`inputs` of the manifest: each table's file name, size and sha256. The stage phase runs it
    beside its tasks (hashing reads at least ten times faster than staging), so what it records is
    what was staged."""
    return [{"table": table, "file": path.name, "bytes": path.stat().st_size, "sha256": file_sha256(path)}
            for _, table, path in tables]


def write_json_atomic(path: Path, values: dict) -> None:
    """Write JSON to a temporary file beside `path`, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def read_manifest(output_dir: Path) -> dict:
    """The manifest of a finished output directory."""
    return json.loads((Path(output_dir) / MANIFEST_FILE).read_text(encoding="utf-8"))


def dataset_prefixes(output_dir: Path) -> dict[str, str]:
    """Absolute `.bin/.idx` prefix per split ('train', 'valid', 'test') of a finished output."""
    manifest = read_manifest(output_dir)
    return {split: str(Path(output_dir) / name) for split, name in manifest["datasets"].items()}


def build_manifest(*, config, reader, tables, inputs, ledger, harmoniser, coverage, merged, tokenizer, written,
                   datasets, shard_datasets, num_buckets, visit_suffix: str, timelines: str) -> dict:
    """The manifest of a finished run (schema in docs/data.md)."""
    roles = {spec.name: spec.role for spec in reader.tables}
    totals = {role: {"read": 0, "kept": 0, "dropped": Counter()} for role in ("patients", "visits", "events")}
    table_role = {table: roles.get(spec, "events") for spec, table, _ in tables}
    for table, count in ledger.tables.items():
        total = totals[table_role.get(table, "events")]
        total["read"] += count.read
        total["kept"] += count.kept
        total["dropped"].update(count.dropped)
    by_system: dict = {}
    for (system, outcome, unit), count in sorted(coverage.items()):
        by_system.setdefault(system, {"events": {}, "codes": {}})[unit][outcome] = count
    flags = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()
             if k not in ("input_dir", "output_dir", "workers", "part_bytes", "progress", "keep_work", "tokenizer_dir",
                          "gem_dir", "overwrite")}
    flags["gem_source"] = "cms-files" if config.gem_dir is not None else "package"
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "source": config.source,
        "inputs": inputs,
        "flags": flags,
        "harmonisation": {**harmoniser.describe(), "coverage": by_system},
        "counts": {
            **{role: {"read": t["read"], "kept": t["kept"], "dropped": dict(sorted(t["dropped"].items()))}
               for role, t in totals.items()},
            "tables": ledger.to_dict()["tables"],
            "empty_tables": ledger.empty_tables(),
            "events_merged_in_bundle": merged,
        },
        "split": {"seed": config.seed, "fractions": list(config.split_fractions),
                  "method": "fnv1a64+splitmix64(f\"{seed}:{patient_id}\") / 2^64 against cumulative fractions"},
        "visit_index": {"source": reader.visits},
        "timelines": timelines,
        "num_shards": config.num_shards,
        "num_buckets": num_buckets,
        "drop_reasons": DROP_REASONS,
        "drop_examples": ledger.to_dict()["examples"],
    }
    record_tokenized(manifest, tokenizer=tokenizer, reused=config.tokenizer_dir is not None, written=written,
                     datasets=datasets, shard_datasets=shard_datasets, visit_suffix=visit_suffix)
    return manifest


def record_tokenized(manifest: dict, *, tokenizer, reused: bool, written: list[dict], datasets: dict,
                     shard_datasets: dict, visit_suffix: str) -> None:
    """Set the parts of `manifest` that depend on the tokenizer (the rest depends on the timelines
    only, so a re-tokenized directory keeps its source's, docs/data.md)."""
    unknown, patients, tokens, visits = Counter(), Counter(), Counter(), Counter()  # summed over buckets
    for result in written:
        unknown.update(result["unknown"])
        patients.update(result["patients"])
        tokens.update(result["tokens"])
        visits.update(result["visits"])
    manifest["tokenizer"] = {
        "directory": "tokenizer", "name": tokenizer.name, "version": tokenizer.version,
        "vocab_size": tokenizer.vocab_size, "reused": reused,
        "bundle_order": getattr(tokenizer, "bundle_order", "sorted"),
        "special_ids": tokenizer.special_ids, "unique_identifiers": tokenizer.unique_identifiers,
    }
    manifest["counts"].update({
        "unknown_tokens": dict(sorted(unknown.items())),
        "patients_written": {split: patients[split] for split in SPLITS},
        "tokens_written": {split: tokens[split] for split in SPLITS},
        "visits_written": {split: visits[split] for split in SPLITS},
    })
    manifest["datasets"] = datasets
    manifest["visit_index"]["files"] = {split: f"{name}{visit_suffix}" for split, name in datasets.items()}
    manifest["shard_datasets"] = shard_datasets if manifest["num_shards"] > 1 else {}
