"""Command-line flags of examples/evaluate_next_visit.py and their translation into `EvaluationConfig`."""

from __future__ import annotations

import argparse
from pathlib import Path

from sparseehr_mcore.evaluation.config import EvaluationConfig, RolloutSettings


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (built on demand, never at import)."""
    parser = argparse.ArgumentParser(
        prog="evaluate_next_visit.py",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Zero-shot next-visit ICD-10 diagnosis prediction: Recall@K of a SparseEHR model by roll-out "
        "(protocol A: highest probability of each code over the rolled-out visit; protocol B: expected count of "
        "each code over sampled roll-outs) next to population-frequency and patient-history baselines on the "
        "same visits, with rare/common, new/repeated and chapter breakdowns, a binary endpoint and the routing "
        "analysis. Writes report.json, report.md, timing.json and PNG plots. See docs/evaluation.md.",
    )
    io = parser.add_argument_group("input and output")
    io.add_argument("--checkpoint", required=True, type=Path,
                    help="a Megatron-Core checkpoint (run root or iter_* dir, any TP/PP/EP layout) or a Hugging Face "
                    "export folder (tools/convert_checkpoint.py --to hf)")
    io.add_argument("--data", required=True, type=Path,
                    help="an output folder of tools/preprocess_ehr.py made with the checkpoint's own tokenizer "
                    "(--tokenizer-dir CHECKPOINT/tokenizer)")
    io.add_argument("--output", required=True, type=Path,
                    help="folder for the report and plots (an earlier report there is replaced whole)")
    io.add_argument("--overwrite", action="store_true",
                    help="replace an --output folder holding files the evaluation does not write")
    io.add_argument("--splits", type=_names, default=None,
                    help="comma-separated splits to evaluate (default: every split; a held-out hospital is all "
                    "evaluation data)")
    io.add_argument("--max-patients", type=int, default=None, help="evaluate only the first N patients")
    io.add_argument("--quiet", action="store_true", help="no progress bars")
    task = parser.add_argument_group("task")
    task.add_argument("--visits", choices=("source", "day-bundles"), default="source",
                      help="what a visit is: the source's visits (admissions, encounters; the visit index "
                      "preprocessing writes) or every day bundle")
    task.add_argument("--ks", type=_ints, default=(1, 3, 5, 10, 20, 50, 100), help="the K of Recall@K")
    task.add_argument("--rare-threshold", type=int, default=None,
                      help="a target code is rare when its training count (the tokenizer's term_counts.json) is "
                      "below this (default: the median training count of the vocabulary's diagnosis codes, "
                      "or of its categories at category level)")
    task.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates over patients (0: no intervals)")
    task.add_argument("--endpoint-name", default="diabetes", help="name of the binary endpoint's code set")
    task.add_argument("--endpoint-codes", default="E08-E13",
                      help="ICD-10 categories of the binary endpoint: ranges and/or codes, e.g. E08-E13 or I50,I11")
    task.add_argument("--k-cls", type=_ints, default=(1, 3, 5, 10, 20, 50, 100),
                      help="thresholds swept for the endpoint (a code of the set in the top k_cls)")
    task.add_argument("--no-routing", action="store_true", help="skip the routing analysis")
    roll = parser.add_argument_group("roll-outs")
    roll.add_argument("--protocols", type=_names, default=("A", "B"), help="A, B or A,B")
    roll.add_argument("--decoding", choices=("greedy", "sample"), default="greedy", help="protocol A's decoding")
    roll.add_argument("--rollouts", type=int, default=1, help="protocol A's roll-outs per visit, averaged (>1: sample)")
    roll.add_argument("--samples", type=int, default=4, help="protocol B's sampled roll-outs per visit")
    roll.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    roll.add_argument("--max-new-tokens", type=int, default=64, help="cap on the tokens one roll-out generates")
    roll.add_argument("--rollout-bundles", default="visit",
                      help="bundles a roll-out generates: 'visit' (as many as the visit has; it reveals the "
                      "visit's length in days, not its codes) or a number (1: the next bundle only)")
    roll.add_argument("--no-kv-cache", action="store_true", help="recompute the context every step (for checks)")
    roll.add_argument("--batch-size", type=int, default=16, help="visits per batched generate")
    roll.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where the models run")
    roll.add_argument("--seed", type=int, default=1234, help="seed of sampling, bootstrap and the endpoint's halves")
    return parser


def config_from_args(args: argparse.Namespace) -> EvaluationConfig:
    """An `EvaluationConfig` from parsed flags (validated in its `__post_init__`)."""
    return EvaluationConfig(
        checkpoint=args.checkpoint, data=args.data, output=args.output, overwrite=args.overwrite, splits=args.splits,
        max_patients=args.max_patients, progress=not args.quiet, visits=args.visits, ks=args.ks,
        rare_threshold=args.rare_threshold, bootstrap=args.bootstrap, endpoint_name=args.endpoint_name,
        endpoint_codes=args.endpoint_codes, k_cls=args.k_cls, routing=not args.no_routing,
        protocols=tuple(p.upper() for p in args.protocols), batch_size=args.batch_size, device=args.device,
        seed=args.seed,
        rollout=RolloutSettings(
            decoding=args.decoding, rollouts=args.rollouts, samples=args.samples, temperature=args.temperature,
            max_new_tokens=args.max_new_tokens, bundles=args.rollout_bundles, use_cache=not args.no_kv_cache,
            seed=args.seed,
        ),
    )
