"""`evaluate(config)`: a zero-shot next-visit evaluation from checkpoint and dataset to report.

Steps: check the inputs (the dataset must be tokenized with the checkpoint's own vocabulary), read
the visits, score every batch of visits with every method (population frequency, history,
protocols A and B) and keep only the ranks of the targets, then compute Recall@K with intervals,
the breakdowns, the binary endpoint and the routing analysis, and write the report.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sparseehr_mcore.data.manifest import MANIFEST_FILE, read_manifest
from sparseehr_mcore.evaluation.baselines import History, PopulationFrequency, population_counts
from sparseehr_mcore.evaluation.codes import CodeSpace
from sparseehr_mcore.evaluation.cohort import Cohort, Visit, read_cohort
from sparseehr_mcore.evaluation.config import EvaluationConfig, EvaluationInputError
from sparseehr_mcore.evaluation.endpoint import endpoint_report
from sparseehr_mcore.evaluation.metrics import Targets, breakdowns, recall_table, target_ranks
from sparseehr_mcore.evaluation.models import ModelLocation, load_model, locate_model, resolve_device
from sparseehr_mcore.evaluation.protocols import ModelScorer
from sparseehr_mcore.evaluation.report import write_report
from sparseehr_mcore.evaluation.rollout import GrammarIds
from sparseehr_mcore.evaluation.routing import routing_counts
from sparseehr_mcore.outputs import OutputError, OutputKind, check_output_dir, staged_output
from sparseehr_mcore.tokenization.base import load_term_counts
from sparseehr_mcore.tokenization.metadata import load_tokenizer

LEVELS = ("token", "category")
REPORT_SCHEMA_VERSION = 1


@dataclass
class _Ranks:
    """Per method and level, the rank of every target (in `Targets` order), and per visit the
    best rank of the endpoint's codes."""

    targets: dict[str, dict[str, list[np.ndarray]]] = field(default_factory=dict)
    endpoint: dict[str, list[float]] = field(default_factory=dict)

    def add(self, method: str, level: str, ranks: np.ndarray) -> None:
        self.targets.setdefault(method, {}).setdefault(level, []).append(ranks)

    def joined(self, method: str, level: str) -> np.ndarray:
        parts = self.targets[method][level]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


# What the evaluation writes into --output (anything else there is refused unless --overwrite).
REPORT_OUTPUTS = OutputKind(flag="--output", own=("report.json", "report.md", "timing.json", "*.png"))


def dataset_splits(data: Path, splits: tuple[str, ...] | None) -> tuple[dict, dict[str, str]]:
    """The dataset's manifest and the prefix of each split to evaluate."""
    if not data.is_dir():
        raise EvaluationInputError(f"--data {data} does not exist")
    if not (data / MANIFEST_FILE).is_file():
        raise EvaluationInputError(f"--data {data}: no {MANIFEST_FILE} (not a finished output of tools/preprocess_ehr.py)")
    manifest = read_manifest(data)
    available = manifest["datasets"]
    if not available:
        raise EvaluationInputError(f"--data {data}: the dataset holds no patients (its manifest lists no split)")
    chosen = list(splits) if splits else list(available)
    missing = [s for s in chosen if s not in available]
    if missing:
        raise EvaluationInputError(f"--splits {','.join(missing)}: {data} has only {', '.join(available)}")
    return manifest, {split: str(data / available[split]) for split in chosen}


def check_same_vocabulary(manifest: dict, tokenizer, data: Path, model: ModelLocation) -> None:
    ours = tokenizer.unique_identifiers["vocab_sha256"]
    theirs = manifest["tokenizer"]["unique_identifiers"]["vocab_sha256"]
    if ours != theirs:
        raise EvaluationInputError(
            f"--data {data} was tokenized with another vocabulary than the checkpoint's ({model.tokenizer_dir}): "
            f"preprocess it again with tools/preprocess_ehr.py --tokenizer-dir {model.tokenizer_dir}"
        )
    if tokenizer.vocab_size > model.model_config.padded_vocab_size:
        raise EvaluationInputError(f"the tokenizer has {tokenizer.vocab_size} tokens, more than the model's embedding")


def rare_thresholds(codes: CodeSpace, counts: np.ndarray, threshold: int | None) -> dict[str, float]:
    """Per code level, the training count below which a code is rare: `threshold`, or the median
    count of the vocabulary's candidates at that level (so "rare" means the less frequent half of
    the vocabulary, whatever the corpus size)."""
    category_counts = counts @ codes.category_matrix()
    if threshold is not None:
        return {"token": float(threshold), "category": float(threshold)}
    return {"token": float(np.median(counts)), "category": float(np.median(category_counts))}


def build_targets(cohort: Cohort, codes: CodeSpace, counts: np.ndarray, *,
                  rare_below: dict[str, float]) -> dict[str, Targets]:
    """The targets of every visit at the token and the category level."""
    category_counts = counts @ codes.category_matrix()
    rows: dict[str, list[list]] = {level: [[], [], [], [], []] for level in LEVELS}
    for index, visit in enumerate(cohort.visits):
        seen = np.fromiter(visit.history.keys(), dtype=np.int64, count=len(visit.history))
        categories = np.unique(codes.category_of[visit.targets])
        seen_categories = np.unique(codes.category_of[seen]) if len(seen) else seen
        for level, columns, known, level_counts, chapter_of in (
            ("token", visit.targets, seen, counts, lambda c: codes.chapter_of_category[codes.category_of[c]]),
            ("category", categories, seen_categories, category_counts, lambda c: codes.chapter_of_category[c]),
        ):
            visit_rows, column_rows, rare, repeat, chapter = rows[level]
            visit_rows.extend([index] * len(columns))
            column_rows.extend(columns.tolist())
            rare.extend((level_counts[columns] < rare_below[level]).tolist())
            repeat.extend(np.isin(columns, known).tolist())
            chapter.extend(chapter_of(c) for c in columns)
    patient = np.array([v.patient for v in cohort.visits], dtype=np.int64)
    unknown = np.array([v.unknown_targets for v in cohort.visits], dtype=np.float64)
    return {
        level: Targets(visit=np.array(r[0], dtype=np.int64), column=np.array(r[1], dtype=np.int64),
                       rare=np.array(r[2], dtype=bool), repeat=np.array(r[3], dtype=bool),
                       chapter=np.array(r[4], dtype=object), patient=patient, unknown=unknown)
        for level, r in rows.items()
    }


def evaluate(config: EvaluationConfig, *, log=print) -> dict:
    """Run the evaluation `config` describes; returns the report (also written under `config.output`).

    Raises:
        EvaluationInputError: bad checkpoint, dataset or flags, with one line that says what to do.
    """
    started = time.perf_counter()
    manifest, prefixes = dataset_splits(Path(config.data), config.splits)
    try:
        check_output_dir(config.output, kind=REPORT_OUTPUTS, overwrite=config.overwrite)
    except OutputError as err:
        raise EvaluationInputError(str(err)) from None
    device = resolve_device(config.device)
    location = locate_model(config.checkpoint)
    try:
        tokenizer = load_tokenizer(location.tokenizer_dir)
    except (FileNotFoundError, ValueError) as err:
        raise EvaluationInputError(f"the checkpoint's tokenizer {location.tokenizer_dir}: {err}") from None
    check_same_vocabulary(manifest, tokenizer, Path(config.data), location)
    model = load_model(location, device=device)
    codes = CodeSpace.from_tokens(tokenizer.tokens)
    if codes.num_candidates == 0:
        raise EvaluationInputError(f"the checkpoint's vocabulary ({model.tokenizer_dir}) holds no diagnosis (DX:) token")
    term_counts = load_term_counts(model.tokenizer_dir)
    counts = population_counts(codes, term_counts)
    special = tokenizer.special_ids
    context_length = model.max_positions - config.rollout.max_new_tokens
    if context_length < 8:
        raise EvaluationInputError(
            f"--max-new-tokens {config.rollout.max_new_tokens} leaves {context_length} of the model's "
            f"{model.max_positions} positions for the context"
        )
    cohort = read_cohort(prefixes, codes=codes, special_ids=special, context_length=context_length,
                         visit_mode=config.visits, max_patients=config.max_patients)
    if not cohort.visits:
        raise EvaluationInputError(
            f"--data {config.data}: no visit to score ({cohort.patients} patients; not scored: "
            f"{dict(cohort.skipped) or 'none'}); next-visit prediction needs patients with two or more visits"
        )
    log(f"evaluating {len(cohort.visits)} visits of {cohort.patients} patients ({', '.join(prefixes)}) "
        f"from {model.kind} checkpoint {model.path}")

    grammar = GrammarIds.build(codes, tokenizer.tokens, special, model.model_config.padded_vocab_size)
    methods = {"population frequency": PopulationFrequency(codes, counts), "history": History(codes, counts)}
    scorers = {}
    for protocol in config.protocols:
        scorers[protocol] = ModelScorer(model=model, codes=codes, grammar=grammar, settings=config.rollout,
                                        protocol=protocol)
        methods[f"model (protocol {protocol})"] = scorers[protocol]
    endpoint_columns = codes.columns_matching(config.endpoint_prefixes)
    ranks, seconds = _rank_all(cohort.visits, methods, codes, endpoint_columns, batch_size=config.batch_size,
                               progress=config.progress)
    rare_below = rare_thresholds(codes, counts, config.rare_threshold)
    targets = build_targets(cohort, codes, counts, rare_below=rare_below)
    report = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "checkpoint": model.describe(),
        "tokenizer": {"name": tokenizer.name, "vocab_size": tokenizer.vocab_size,
                      "vocab_sha256": tokenizer.unique_identifiers["vocab_sha256"],
                      "bundle_order_trained": getattr(tokenizer, "bundle_order", "sorted"),
                      "diagnosis_candidates": codes.num_candidates, "categories": len(codes.categories),
                      "term_counts": term_counts is not None},
        "data": {"path": str(config.data), "source": manifest["source"], "splits": list(prefixes),
                 "harmonisation_fingerprint": manifest["harmonisation"]["fingerprint"],
                 "harmonisation_coverage": manifest["harmonisation"]["coverage"],
                 "visit_index": manifest.get("visit_index", {}).get("source") if config.visits == "source" else
                 "day bundles", "unknown_tokens": manifest["counts"].get("unknown_tokens", {})},
        "settings": config.to_dict(),
        "cohort": _cohort_summary(cohort, targets["token"]),
        "levels": {},
        "endpoint": {"name": config.endpoint_name, "codes": config.endpoint_codes,
                     "candidates_in_vocabulary": len(endpoint_columns), "methods": {}},
        "rollouts": {p: vars(s.stats) for p, s in scorers.items()},
    }
    for level in LEVELS:
        tables = {method: recall_table(targets[level], ranks.joined(method, level), ks=config.ks,
                                       bootstrap=config.bootstrap, seed=config.seed) for method in methods}
        parts = {method: breakdowns(targets[level], ranks.joined(method, level), ks=config.ks) for method in methods}
        report["levels"][level] = {"methods": tables, "breakdowns": parts,
                                   "rare_below_training_count": rare_below[level]}
    labels = _endpoint_labels(cohort.visits, endpoint_columns)
    patients = np.array([v.patient for v in cohort.visits])
    report["endpoint"]["positive_visits"] = int(labels.sum())
    report["endpoint"]["visits_with_unknown_diagnoses"] = int(sum(v.unknown_targets > 0 for v in cohort.visits))
    for method in methods:
        report["endpoint"]["methods"][method] = endpoint_report(
            labels, np.array(ranks.endpoint[method]), patients, k_cls=config.k_cls, seed=config.seed)
    if config.routing:
        with tqdm(total=cohort.patients, desc="routing", disable=not config.progress, unit="patient") as bar:
            report["routing"] = routing_counts(
                model.hf_model, prefixes, tokens=tokenizer.tokens, bundle_begin=special["bundle_begin"],
                max_positions=model.max_positions, num_experts=model.model_config.num_experts,
                batch_size=config.batch_size, device=device, max_patients=config.max_patients, progress=bar)
    seconds["total"] = time.perf_counter() - started
    with staged_output(config.output) as staging:  # the old report stays whole until the new one is
        return write_report(report, staging, seconds=seconds, patients=cohort.patients)


def _rank_all(visits: list[Visit], methods: dict, codes: CodeSpace, endpoint_columns: np.ndarray, *,
              batch_size: int, progress: bool) -> tuple[_Ranks, dict[str, float]]:
    ranks, seconds = _Ranks(), {method: 0.0 for method in methods}
    with tqdm(total=len(visits), desc="visits", disable=not progress, unit="visit") as bar:
        for start in range(0, len(visits), batch_size):
            batch = visits[start:start + batch_size]
            for method, scorer in methods.items():
                began = time.perf_counter()
                scores = scorer(batch)
                seconds[method] += time.perf_counter() - began
                for row, visit in enumerate(batch):
                    ranks.add(method, "token", target_ranks(scores.tokens[row], visit.targets))
                    categories = np.unique(codes.category_of[visit.targets])
                    ranks.add(method, "category", target_ranks(scores.categories[row], categories))
                    best = target_ranks(scores.tokens[row], endpoint_columns)
                    ranks.endpoint.setdefault(method, []).append(float(best.min()) if len(best) else np.inf)
            bar.update(len(batch))
    return ranks, seconds


def _endpoint_labels(visits: list[Visit], endpoint_columns: np.ndarray) -> np.ndarray:
    return np.array([bool(np.isin(v.targets, endpoint_columns).any()) for v in visits], dtype=bool)


def _cohort_summary(cohort: Cohort, token_targets: Targets) -> dict:
    known = len(token_targets.column)
    unknown = int(token_targets.unknown.sum())
    return {
        "patients": cohort.patients, "visits_scored": len(cohort.visits),
        "patients_with_scored_visits": len({v.patient for v in cohort.visits}),
        "not_scored": dict(sorted(cohort.skipped.items())),
        "contexts_truncated": sum(v.truncated for v in cohort.visits),
        "known_diagnosis_targets": known, "unknown_diagnosis_targets": unknown,
        "unknown_share": unknown / (known + unknown) if known + unknown else 0.0,
        "mean_targets_per_visit": (known + unknown) / len(cohort.visits),
        "visits_only_unknown": sum(len(v.targets) == 0 for v in cohort.visits),
    }
