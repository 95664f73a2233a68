"""The preprocessing pipeline in five phases: stage, build, vocab, tokenize, finish.

Work is cut by patient bucket (`partition`); buckets are grouped into `num_shards` shards. `build`
and `tokenize` run per shard, so each shard can be one task of a SLURM job array on another node
(docs/data.md has the recipe); `run_preprocess` runs every phase here with a local process pool.
Everything is written under `OUT/.work` and moved into place by `finish`, which writes
`manifest.json` last; `stage` removes any earlier manifest first, so an interrupted run never
leaves a directory that looks complete.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from sparseehr_mcore.data.indexed import merge_datasets, publish
from sparseehr_mcore.data.ledger import Ledger, PreprocessError
from sparseehr_mcore.data.manifest import MANIFEST_FILE, build_manifest, hash_inputs, write_json_atomic
from sparseehr_mcore.data.partition import SPLITS
from sparseehr_mcore.data.progress import phase_bar
from sparseehr_mcore.data.reading import FilePart, split_file
from sparseehr_mcore.data.run_config import (
    TIMELINES_DIR,
    TOKENIZER_DIR,
    WORK_DIR,
    PreprocessConfig,
    input_tables,
    make_harmoniser,
    make_reader,
)
from sparseehr_mcore.data.tasks import (
    build_one,
    map_ordered,
    part_prefix,
    read_result,
    stage_one,
    tokenize_one,
    worker_pool,
)
from sparseehr_mcore.data.visits import VISITS_SUFFIX, merge_visits, visits_path
from sparseehr_mcore.outputs import OutputError, OutputKind, check_output_dir, clear_output_dir
from sparseehr_mcore.tokenization.base import save_term_counts
from sparseehr_mcore.tokenization.metadata import load_tokenizer, save_tokenizer
from sparseehr_mcore.tokenization.registry import resolve

PHASES = ("all", "stage", "build", "vocab", "tokenize", "finish")
PLAN_FILE = "plan.json"
# Flags that may differ between the phases of one run (they do not change any output byte).
RUN_LOCAL_FLAGS = ("workers", "progress", "keep_work", "strict", "part_bytes", "overwrite")
# What a run writes into OUT; anything else there is refused unless --overwrite.
PREPROCESS_OUTPUTS = OutputKind(flag="--output-dir", own=(
    *(f"{split}{suffix}" for split in SPLITS for suffix in (".bin", ".idx", VISITS_SUFFIX)),
    "shards", TOKENIZER_DIR, TIMELINES_DIR, MANIFEST_FILE, f".{MANIFEST_FILE}.tmp-*", WORK_DIR,
))  # fmt: skip


def _flags(config: PreprocessConfig) -> dict:
    return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items() if k not in RUN_LOCAL_FLAGS}


def _plan(config: PreprocessConfig) -> dict:
    path = config.work / PLAN_FILE
    if not path.is_file():
        raise PreprocessError(f"{config.work}: no {PLAN_FILE}; run the 'stage' phase first")
    plan = json.loads(path.read_text(encoding="utf-8"))
    if plan["flags"] != json.loads(json.dumps(_flags(config))):
        raise PreprocessError(f"{path}: staged with different flags; use the same flags in every phase")
    plan["tables"] = [(spec, table, Path(file)) for spec, table, file in plan["tables"]]
    return plan


def _buckets(plan: dict, shard: int | None) -> range:
    if shard is None:
        return range(plan["num_buckets"])
    if not 0 <= shard < plan["num_shards"]:
        raise PreprocessError(f"--shard-index {shard}: must be in 0..{plan['num_shards'] - 1}")
    return range(shard * plan["per_shard"], (shard + 1) * plan["per_shard"])


def clear_outputs(output: Path, work: Path) -> None:
    """Remove the manifest first (from then on the directory is "incomplete"), then the work
    directory and every output of an earlier run, which must not mix with ours."""
    output.mkdir(parents=True, exist_ok=True)
    (output / MANIFEST_FILE).unlink(missing_ok=True)
    shutil.rmtree(work, ignore_errors=True)
    for stale in [*SPLITS, "shards", TOKENIZER_DIR, TIMELINES_DIR]:
        for path in (output / f"{stale}.bin", output / f"{stale}.idx", visits_path(output / stale), output / stale):
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()


def stage(config: PreprocessConfig, *, pool=None) -> dict:
    """Clear stale outputs, plan the buckets and stream every input table into them."""
    output = Path(config.output_dir)
    if config.overwrite:  # checked by run_preprocess: the folder may hold files of any origin
        clear_output_dir(output)
    clear_outputs(output, config.work)
    tables = input_tables(config, make_reader(config))
    make_harmoniser(config)  # fail now, not in every worker, if the GEMs are missing
    total_bytes = sum(path.stat().st_size for _, _, path in tables)
    per_shard = max(1, math.ceil(total_bytes / (config.num_shards * config.bucket_bytes)))
    plan = {"flags": _flags(config), "num_shards": config.num_shards, "per_shard": per_shard,
            "num_buckets": config.num_shards * per_shard,
            "tables": [(spec, table, str(path)) for spec, table, path in tables]}
    # Strict mode reads every file whole and in order: its first error must be the file's first.
    parts = [(table, part) for table in tables
             for part in enumerate(split_file(table[2], config.part_bytes) if not config.strict else [FilePart()])]
    plan["stage_tasks"] = len(parts)
    config.work.mkdir(parents=True)
    tasks = [(config, plan["num_buckets"], i, table, part) for i, (table, part) in enumerate(parts)]
    sizes = [table[2].stat().st_size if part.end is None else part.end - part.start for table, (_, part) in parts]
    with ThreadPoolExecutor(1, thread_name_prefix="hash-inputs") as hashing:
        inputs = hashing.submit(hash_inputs, tables)  # beside the tasks, off the run's serial path
        map_ordered(stage_one, tasks, pool=pool, desc="stage", progress=config.progress, sizes=sizes)
        plan["inputs"] = inputs.result()
    _check_empty_tables(config, _stage_ledger(config.work, plan["stage_tasks"]), tables=tables)
    write_json_atomic(config.work / PLAN_FILE, plan)
    return plan


def _stage_ledger(work: Path, stage_tasks: int) -> Ledger:
    """The staging ledgers of every task, merged in file and part order (the first examples are a
    file's first)."""
    ledger = Ledger()
    for index in range(stage_tasks):
        ledger.merge(Ledger.from_dict(read_result(work, "stage", index)["ledger"]))
    return ledger


def _check_empty_tables(config: PreprocessConfig, ledger: Ledger, *, tables) -> None:
    """With --strict, an input table with a header and no rows stops the run (without it, the
    manifest lists it under `counts.empty_tables` and the command warns)."""
    empty = ledger.empty_tables()
    if config.strict and empty:
        files = {table: Path(path).name for _, table, path in tables}
        raise PreprocessError(
            f"{config.input_dir}: empty input table(s) {', '.join(f'{t} ({files.get(t, t)})' for t in empty)}: "
            "a header and no rows (--strict refuses them; without it they are recorded in the manifest)"
        )


def build(config: PreprocessConfig, *, shard: int | None = None, pool=None) -> None:
    """Timelines and term counts of every bucket of `shard` (all shards when None)."""
    plan = _plan(config)
    tasks = [(config, plan["tables"], b) for b in _buckets(plan, shard)]
    map_ordered(build_one, tasks, pool=pool, desc="build", progress=config.progress)


def vocab(config: PreprocessConfig) -> None:
    """Merge every bucket's term counts into the vocabulary, or copy the reused tokenizer."""
    plan = _plan(config)
    target = config.work / TOKENIZER_DIR
    shutil.rmtree(target, ignore_errors=True)
    if config.tokenizer_dir is not None:
        copy_frozen_tokenizer(Path(config.tokenizer_dir), target, bundle_order=config.bundle_order)
        return
    terms: Counter = Counter()
    # One step per bucket's counts, one for building and saving the vocabulary.
    with phase_bar("vocab", total=plan["num_buckets"] + 1, enabled=config.progress) as bar:
        for bucket in range(plan["num_buckets"]):
            terms.update(read_result(config.work, "build", bucket)["terms"])
            bar.update()
        save_new_tokenizer(target, terms, plugin=config.tokenizer, min_count=config.min_count,
                           bundle_order=config.bundle_order)
        bar.update()


def copy_frozen_tokenizer(source: Path, target: Path, *, bundle_order: str | None) -> None:
    """Copy a saved tokenizer unchanged; `bundle_order` (a flag) must be None or its own order."""
    shutil.copytree(source, target)
    tokenizer = load_tokenizer(target)  # fail here if it is not a saved tokenizer
    saved_order = getattr(tokenizer, "bundle_order", "sorted")
    if bundle_order is not None and bundle_order != saved_order:
        raise PreprocessError(
            f"--bundle-order {bundle_order}: the reused tokenizer {source} orders bundles "
            f"{saved_order!r}; a frozen tokenizer keeps its order (leave --bundle-order out)"
        )


def save_new_tokenizer(target: Path, terms: Counter, *, plugin: str, min_count: int, bundle_order: str | None):
    """Build a vocabulary from training-split term counts, save it with its counts; returns it."""
    options = {"bundle_order": bundle_order} if bundle_order not in (None, "sorted") else {}
    try:
        tokenizer = resolve(plugin).from_counts(terms, min_count=min_count, **options)
    except (TypeError, ValueError) as err:
        raise PreprocessError(f"tokenizer {plugin} with --bundle-order {bundle_order}: {err}") from None
    save_tokenizer(tokenizer, target)
    save_term_counts(target, terms)
    return tokenizer


def tokenize(config: PreprocessConfig, *, shard: int | None = None, pool=None) -> None:
    """Encode every bucket of `shard` (all when None) with the run's tokenizer."""
    plan = _plan(config)
    work = config.work
    tasks = [(work, work / TIMELINES_DIR, work / TOKENIZER_DIR, b) for b in _buckets(plan, shard)]
    map_ordered(tokenize_one, tasks, pool=pool, desc="tokenize", progress=config.progress)


def finish(config: PreprocessConfig) -> dict:
    """Merge the bucket datasets, move outputs into place, write the manifest last."""
    plan = _plan(config)
    output, work = Path(config.output_dir), config.work
    ledger = _stage_ledger(work, plan["stage_tasks"])
    _check_empty_tables(config, ledger, tables=plan["tables"])  # --strict may be given to this phase alone
    built = [read_result(work, "build", b) for b in range(plan["num_buckets"])]
    written = [read_result(work, "tokenize", b) for b in range(plan["num_buckets"])]
    for result in built:
        ledger.merge(Ledger.from_dict(result["ledger"]))
    ledger.check_balanced()
    coverage = Counter()
    for result in built:
        coverage.update({tuple(row[:3]): row[3] for row in result["coverage"]})
    datasets, shard_datasets = merge_outputs(output, work, plan=plan, written=written, progress=config.progress)
    tokenizer = load_tokenizer(work / TOKENIZER_DIR)
    (work / TOKENIZER_DIR).rename(output / TOKENIZER_DIR)
    (work / TIMELINES_DIR).rename(output / TIMELINES_DIR)
    manifest = build_manifest(
        config=config, reader=make_reader(config), tables=plan["tables"], inputs=plan["inputs"], ledger=ledger,
        harmoniser=make_harmoniser(config), coverage=coverage, merged=sum(r["merged"] for r in built),
        tokenizer=tokenizer, written=written, datasets=datasets, shard_datasets=shard_datasets,
        num_buckets=plan["num_buckets"], visit_suffix=VISITS_SUFFIX, timelines=TIMELINES_DIR,
    )
    if not config.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    write_json_atomic(output / MANIFEST_FILE, manifest)
    return manifest


def run_preprocess(config: PreprocessConfig, *, phase: str = "all", shard: int | None = None) -> dict | None:
    """Run one phase (or all of them); returns the manifest when the run finishes.

    Raises:
        PreprocessError: bad flags or input (`BadRecordError` for the first bad row when strict).
    """
    if phase not in PHASES:
        raise PreprocessError(f"--phase {phase!r}: choose one of {', '.join(PHASES)}")
    try:  # before any work; the later phases write into the folder their stage phase claimed
        check_output_dir(config.output_dir, kind=PREPROCESS_OUTPUTS, overwrite=config.overwrite or phase not in ("all", "stage"))
    except OutputError as err:
        raise PreprocessError(str(err)) from None
    if phase in ("vocab", "finish"):
        return {"vocab": vocab, "finish": finish}[phase](config)
    pool = worker_pool(config.workers)
    try:
        if phase == "stage":
            return stage(config, pool=pool)
        if phase in ("build", "tokenize"):
            return {"build": build, "tokenize": tokenize}[phase](config, shard=shard, pool=pool)
        try:
            stage(config, pool=pool)
            build(config, pool=pool)
            vocab(config)
            tokenize(config, pool=pool)
            return finish(config)
        finally:
            if not config.keep_work:
                shutil.rmtree(config.work, ignore_errors=True)
    finally:
        if pool is not None:
            pool.shutdown()


def merge_outputs(output: Path, work: Path, *, plan: dict, written: list[dict], progress: bool):
    """Merge bucket parts into one dataset per split, and per shard when there are several.

    A split (or a shard's split) with no patients gets no files: Megatron-Core cannot map an empty
    `.bin`, so the manifest lists only the datasets that exist.
    """
    datasets, shard_datasets = {}, {split: [] for split in SPLITS}
    shards = list(range(plan["num_shards"])) if plan["num_shards"] > 1 else []
    steps = [(split, shard) for split in SPLITS for shard in [*shards, None]]  # None: the merged split
    with phase_bar("finish: merge", total=len(steps), enabled=progress) as bar:
        for split, shard in steps:
            buckets = _buckets(plan, shard)
            if not sum(written[b]["patients"][split] for b in buckets):
                bar.update()
                continue
            parts = [part_prefix(work, b, split) for b in buckets]
            if shard is None:
                merge_datasets(parts, work / "merged" / split)
                merge_visits(parts, [result["patients"][split] for result in written], work / "merged" / split)
                publish(work / "merged" / split, output / split)
                os.replace(visits_path(work / "merged" / split), visits_path(output / split))
                datasets[split] = split
            else:
                name = f"shards/{shard:05d}-of-{plan['num_shards']:05d}/{split}"
                merge_datasets(parts, work / "merged" / name)
                publish(work / "merged" / name, output / name)
                shard_datasets[split].append(name)
            bar.update()
    return datasets, shard_datasets
