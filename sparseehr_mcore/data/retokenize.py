"""Re-encode a finished preprocessing run's timelines with another frozen tokenizer.

Every run keeps its built, harmonised timelines in `OUT/timelines/` (one Parquet pair per bucket),
so a directory can be encoded again with a vocabulary shared by several sources
(`tools/build_vocab.py`) without staging and building the raw tables again. Nothing but the
tokenizer changes: the output holds the bytes a fresh `tools/preprocess_ehr.py` run with the same
flags plus `--tokenizer-dir` would write (tested), its manifest the source's counts, rules and
inputs with the tokenizer, the datasets and the unknown-token counts of the new encoding.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from sparseehr_mcore.data.ledger import PreprocessError
from sparseehr_mcore.data.manifest import MANIFEST_FILE, read_manifest, record_tokenized, write_json_atomic
from sparseehr_mcore.data.preprocess import PREPROCESS_OUTPUTS, clear_outputs, copy_frozen_tokenizer, merge_outputs
from sparseehr_mcore.data.run_config import TIMELINES_DIR, TOKENIZER_DIR, WORK_DIR
from sparseehr_mcore.data.tasks import map_ordered, read_result, timeline_paths, tokenize_one, worker_pool
from sparseehr_mcore.data.visits import VISITS_SUFFIX
from sparseehr_mcore.outputs import OutputError, check_output_dir, clear_output_dir
from sparseehr_mcore.tokenization.metadata import load_tokenizer


@dataclass(frozen=True, kw_only=True)
class RetokenizeConfig:
    """`tools/preprocess_ehr.py --retokenize DIR --tokenizer-dir TOK --output-dir OUT`."""

    preprocessed_dir: Path
    tokenizer_dir: Path
    output_dir: Path
    workers: int = 1
    keep_work: bool = False
    progress: bool = False
    overwrite: bool = False  # replace an output folder holding files the run does not write

    def __post_init__(self) -> None:
        source = Path(self.preprocessed_dir)
        if not (source / MANIFEST_FILE).is_file():
            raise PreprocessError(f"--retokenize {source}: no {MANIFEST_FILE} (not a finished preprocessing output)")
        if not Path(self.tokenizer_dir).is_dir():
            raise PreprocessError(f"--tokenizer-dir {self.tokenizer_dir}: not a directory")
        output = Path(self.output_dir).resolve()
        if output == source.resolve():
            raise PreprocessError(f"--output-dir {self.output_dir} is the --retokenize directory; give a new one")
        if Path(self.tokenizer_dir).resolve() == output / TOKENIZER_DIR:
            raise PreprocessError(
                f"--tokenizer-dir {self.tokenizer_dir} is this run's own output; copy it elsewhere first"
            )
        inside = [f"{flag} {path}" for flag, path in (("--retokenize", source), ("--tokenizer-dir", self.tokenizer_dir))
                  if Path(path).resolve().is_relative_to(output)]
        if self.overwrite and inside:
            raise PreprocessError(f"--overwrite would delete {', '.join(inside)} (inside --output-dir); move it first")
        if self.workers < 1:
            raise PreprocessError("--workers must be >= 1")

    @property
    def work(self) -> Path:
        return Path(self.output_dir) / WORK_DIR


def _source_manifest(config: RetokenizeConfig) -> dict:
    source = Path(config.preprocessed_dir)
    manifest = read_manifest(source)
    timelines = source / TIMELINES_DIR
    missing = [path.name for bucket in range(manifest["num_buckets"]) for path in timeline_paths(timelines, bucket)
               if not path.is_file()]
    if manifest.get("timelines") != TIMELINES_DIR or missing:
        raise PreprocessError(
            f"--retokenize {source}: its built timelines ({TIMELINES_DIR}/) are missing"
            f"{' (' + ', '.join(missing[:2]) + ', ...)' if missing else ''}; preprocess the raw tables again"
        )
    return manifest


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard-link (no second copy on disk) where the filesystem allows, else copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def run_retokenize(config: RetokenizeConfig) -> dict:
    """Encode `preprocessed_dir`'s timelines with `tokenizer_dir` into `output_dir`; returns the manifest."""
    manifest = _source_manifest(config)
    output, work, source = Path(config.output_dir), config.work, Path(config.preprocessed_dir)
    try:  # before any work, as for a preprocessing run
        check_output_dir(output, kind=PREPROCESS_OUTPUTS, overwrite=config.overwrite)
    except OutputError as err:
        raise PreprocessError(str(err)) from None
    if config.overwrite:
        clear_output_dir(output)
    clear_outputs(output, work)
    try:
        copy_frozen_tokenizer(Path(config.tokenizer_dir), work / TOKENIZER_DIR,
                              bundle_order=manifest["flags"].get("bundle_order"))
        num_buckets = manifest["num_buckets"]
        plan = {"num_shards": manifest["num_shards"], "per_shard": num_buckets // manifest["num_shards"],
                "num_buckets": num_buckets}
        tasks = [(work, source / TIMELINES_DIR, work / TOKENIZER_DIR, b) for b in range(num_buckets)]
        pool = worker_pool(config.workers)
        try:
            map_ordered(tokenize_one, tasks, pool=pool, desc="tokenize", progress=config.progress)
        finally:
            if pool is not None:
                pool.shutdown()
        written = [read_result(work, "tokenize", b) for b in range(num_buckets)]
        datasets, shard_datasets = merge_outputs(output, work, plan=plan, written=written, progress=config.progress)
        tokenizer = load_tokenizer(work / TOKENIZER_DIR)
        (work / TOKENIZER_DIR).rename(output / TOKENIZER_DIR)
        (output / TIMELINES_DIR).mkdir()
        for path in sorted((source / TIMELINES_DIR).glob("*.parquet")):
            _link_or_copy(path, output / TIMELINES_DIR / path.name)
        record_tokenized(manifest, tokenizer=tokenizer, reused=True, written=written, datasets=datasets,
                         shard_datasets=shard_datasets, visit_suffix=VISITS_SUFFIX)
    finally:
        if not config.keep_work:
            shutil.rmtree(work, ignore_errors=True)
    write_json_atomic(output / MANIFEST_FILE, manifest)
    return manifest
