"""The units of work: stage one table, build one bucket's timelines, tokenize one bucket.

Each runs in whichever process gets it (a local pool worker or a SLURM array task) and leaves its
result as files in the work directory (`results/*.json` last), so later phases, on any node, need
nothing but that directory.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import multiprocessing
import os
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from sparseehr_mcore.data.buckets import build_bucket, iter_timelines
from sparseehr_mcore.data.indexed import DTYPE, write_dataset
from sparseehr_mcore.data.ledger import Ledger, PreprocessError
from sparseehr_mcore.data.manifest import write_json_atomic
from sparseehr_mcore.data.partition import SPLITS
from sparseehr_mcore.data.progress import phase_bar
from sparseehr_mcore.data.reading import FilePart
from sparseehr_mcore.data.run_config import TIMELINES_DIR, PreprocessConfig, make_harmoniser, make_reader
from sparseehr_mcore.data.staging import load_staged, stage_table
from sparseehr_mcore.data.visits import visit_starts, write_visits
from sparseehr_mcore.tokenization.metadata import load_tokenizer
from sparseehr_mcore.tokenization.registry import resolve

Table = tuple[str, str, Path]  # (spec name, ledger table name, file)


@dataclass(frozen=True)
class WorkerPool:
    """The child processes of a run with `--workers N`: N - 1 of them, because the calling process
    works through its share of every phase too (`map_ordered`), so a run pays one interpreter start
    and set of imports fewer (about 0.4 s of CPU each)."""

    executor: ProcessPoolExecutor
    children: int

    def shutdown(self) -> None:
        self.executor.shutdown(cancel_futures=True)


def worker_pool(workers: int) -> WorkerPool | None:
    """Spawned child processes (fork is unsafe with polars' threads), or None for in-process work.

    An executor rather than `multiprocessing.Pool`: a worker that dies raises `BrokenProcessPool`
    instead of being replaced silently while the run waits forever. (Children need no warm-up:
    the GEMs, their one fixed cost, are parsed on first use, and only where a code needs them.)
    """
    if workers == 1:
        return None
    children = workers - 1
    executor = ProcessPoolExecutor(children, mp_context=multiprocessing.get_context("spawn"))
    # Start every child now (the executor starts one per submitted task): their interpreter start
    # and imports, half a second, then overlap the parent's planning and first task.
    with _child_threads(workers):
        for _ in range(children):
            executor.submit(int)
    return WorkerPool(executor, children)


@contextlib.contextmanager
def _child_threads(workers: int):
    """Children started inside get an equal share of the cores for polars' thread pool (read from
    POLARS_MAX_THREADS when polars is imported), unless the user set it: every process's own pool
    of all cores would oversubscribe them (threads that spin while they wait for work)."""
    if "POLARS_MAX_THREADS" in os.environ:
        yield
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    os.environ["POLARS_MAX_THREADS"] = str(max(1, cores // workers))
    try:
        yield
    finally:
        del os.environ["POLARS_MAX_THREADS"]


def map_ordered(
    function, items, *, pool: WorkerPool | None, desc: str, progress: bool, sizes: list[int] | None = None
) -> list:
    """`function` over `items`, results in item order: in this process alone, or in this process
    and `pool`'s children (one pool serves every phase of a run, so children pay their imports
    once). The bar, drawn here, advances as tasks finish: by task, or by `sizes` (input bytes per
    item) when given."""
    items = list(items)
    steps = sizes if sizes is not None else [1] * len(items)
    results: list = [None] * len(items)
    with phase_bar(desc, total=sum(steps), enabled=progress, in_bytes=sizes is not None) as bar:
        def finished(index: int, result) -> None:
            results[index] = result
            bar.update(steps[index])

        if pool is None or len(items) <= 1:
            for index, item in enumerate(items):
                finished(index, function(item))
        else:
            try:
                _share_tasks(function, items, pool, finished)
            except BrokenProcessPool as err:
                raise PreprocessError(f"a {desc} worker process died ({err}); rerun with --workers 1 to see why") from None
    return results


def _share_tasks(function, items: list, pool: WorkerPool, finished) -> None:
    """Run `items` in order of index, one at a time in each child and in a thread of this process;
    whichever finishes takes the next (the dispatching thread only waits, so no one idles while a
    task waits in a queue).

    After a task fails no new one starts; once the running ones are done, the failure of the
    lowest index is raised. Every task before it had started, so that is the error a run in one
    process would stop at (`--strict` names the same first bad row however the work was shared).
    """
    pending = iter(range(len(items)))
    running: dict = {}  # future -> (item index, executor)
    failures: dict[int, BaseException] = {}

    def give(executor) -> None:
        index = None if failures else next(pending, None)
        if index is not None:
            running[executor.submit(function, items[index])] = (index, executor)

    with ThreadPoolExecutor(1, thread_name_prefix="preprocess-task") as local:
        for executor in (local, *[pool.executor] * pool.children):
            give(executor)
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                index, executor = running.pop(future)
                if future.exception() is not None:
                    failures[index] = future.exception()
                else:
                    finished(index, future.result())
                give(executor)
    if failures:
        raise failures[min(failures)]


def result_path(work: Path, phase: str, index: int) -> Path:
    return work / "results" / f"{phase}-{index:05d}.json"


def timeline_paths(timelines: Path, bucket: int) -> tuple[Path, Path]:
    """A bucket's built timelines (patients, events) in a `timelines/` directory."""
    base = timelines / f"b{bucket:05d}"
    return base.with_suffix(".patients.parquet"), base.with_suffix(".events.parquet")


def part_prefix(work: Path, bucket: int, split: str) -> Path:
    return work / "parts" / f"b{bucket:05d}" / split


def stage_one(task: tuple[PreprocessConfig, int, int, Table, tuple[int, FilePart]]) -> None:
    """Stream one part of one input table into bucket files; its ledger goes to `results/stage-<i>.json`."""
    config, num_buckets, index, (spec_name, table, path), part = task
    reader = make_reader(config)
    spec = next(s for s in reader.tables if s.name == spec_name)
    ledger = stage_table(reader=reader, spec=spec, table=table, path=path, part=part, work=config.work,
                         num_buckets=num_buckets, strict=config.strict)
    write_json_atomic(result_path(config.work, "stage", index), {"ledger": ledger.to_dict()})


def build_one(task: tuple[PreprocessConfig, list[Table], int]) -> None:
    """Harmonised, ordered timelines of one bucket, its accounting and its training-split term counts."""
    config, tables, bucket = task
    reader = make_reader(config)
    ledger = Ledger(strict=config.strict, files={t: str(p) for _, t, p in tables})
    patients, events = reader.assemble(load_staged(reader, tables, config.work, bucket), ledger)
    patients, events, coverage, merged = build_bucket(
        patients, events, harmoniser=make_harmoniser(config), ledger=ledger, seed=config.seed,
        fractions=config.split_fractions, ages=reader.ages,
    )
    patients_path, events_path = timeline_paths(config.work / TIMELINES_DIR, bucket)
    patients_path.parent.mkdir(parents=True, exist_ok=True)
    patients.write_parquet(patients_path)
    events.write_parquet(events_path)
    terms: Counter = Counter()
    if config.tokenizer_dir is None:
        plugin = resolve(config.tokenizer)
        fast = getattr(plugin, "count_bucket_terms", None)
        counted = fast(patients, events) if fast is not None else None
        if counted is not None:
            terms = counted
        else:
            for split, timeline in iter_timelines(patients, events):
                if split == "train":
                    terms.update(plugin.terms(timeline))
    write_json_atomic(result_path(config.work, "build", bucket), {
        "ledger": ledger.to_dict(),
        "coverage": [[*key, count] for key, count in sorted(coverage.items())],
        "merged": merged,
        "terms": dict(sorted(terms.items())),
    })


def tokenize_one(task: tuple[Path, Path, Path, int]) -> None:
    """Encode one bucket's timelines (from `timelines`) with the saved tokenizer into one indexed
    dataset per split under `work`."""
    work, timelines, tokenizer_dir, bucket = task
    tokenizer = load_tokenizer(tokenizer_dir)
    patients_path, events_path = timeline_paths(timelines, bucket)
    patients, events = pl.read_parquet(patients_path), pl.read_parquet(events_path)
    fast = getattr(tokenizer, "encode_bucket", None)
    layout = fast(patients, events) if fast is not None else None
    ids, lengths = layout if layout is not None else _encode_timelines(tokenizer, patients, events)
    visits = visit_starts(patients, events)
    counts: dict[str, dict[str, int]] = {"patients": {}, "tokens": {}, "visits": {}}
    for split in SPLITS:
        # Every split gets a part, empty or not: `finish` merges a split's parts from every bucket.
        in_split = (patients["split"] == split).to_numpy()
        split_ids, split_lengths = ids[np.repeat(in_split, lengths)], lengths[in_split]
        write_dataset(part_prefix(work, bucket, split), split_ids, split_lengths)
        document = np.cumsum(in_split) - 1  # a patient's index in this part of the split
        split_visits = visits[in_split[visits[:, 0]]]
        write_visits(part_prefix(work, bucket, split), np.stack([document[split_visits[:, 0]], split_visits[:, 1]], 1))
        counts["patients"][split] = int(in_split.sum())
        counts["tokens"][split] = len(split_ids)
        counts["visits"][split] = len(split_visits)
    write_json_atomic(result_path(work, "tokenize", bucket),
                      {**counts, "unknown": _unknown_counts(tokenizer, ids)})


def _encode_timelines(tokenizer, patients: pl.DataFrame, events: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(ids, length per patient) of a bucket in `patients` order, as `encode_bucket` gives them, with
    one `encode` call per timeline: for tokenizers without a vectorised `encode_bucket`."""
    encoded = [tokenizer.encode(timeline) for _, timeline in iter_timelines(patients, events)]
    lengths = np.array([len(patient_ids) for patient_ids in encoded], dtype=np.int64)
    ids = np.fromiter(itertools.chain.from_iterable(encoded), dtype=DTYPE, count=int(lengths.sum()))
    return ids, lengths


def _unknown_counts(tokenizer, ids: np.ndarray) -> dict[str, int]:
    """How often each unknown token occurs in `ids`, by token, sorted."""
    found = ids[np.isin(ids, np.fromiter(tokenizer.unknown_ids, dtype=ids.dtype))]
    tokens = tokenizer.tokens
    return dict(sorted((tokens[i], int(n)) for i, n in zip(*np.unique(found, return_counts=True))))


def read_result(work: Path, phase: str, index: int) -> dict:
    path = result_path(work, phase, index)
    if not path.is_file():
        raise PreprocessError(f"{path} is missing: run the '{phase}' phase for every shard first")
    return json.loads(path.read_text(encoding="utf-8"))
