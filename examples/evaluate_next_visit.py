"""Zero-shot next-visit diagnosis prediction of a SparseEHR checkpoint (see docs/evaluation.md).

    python examples/evaluate_next_visit.py --checkpoint RUN_OR_HF_DIR --data PREPROCESSED_DIR --output REPORT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Parse flags, evaluate, print the summary. Returns the exit status (2 on bad input)."""
    # The library is imported after parsing: --help needs neither torch nor Megatron-Core.
    from sparseehr_mcore.evaluation.cli import build_parser, config_from_args

    parser = build_parser()
    args = parser.parse_args(argv)
    from sparseehr_mcore.evaluation.config import EvaluationInputError
    from sparseehr_mcore.evaluation.report import summary_rows
    from sparseehr_mcore.evaluation.runner import evaluate

    try:
        report = evaluate(config_from_args(args))
    except EvaluationInputError as err:
        parser.exit(2, f"evaluate_next_visit.py: error: {err}\n")
    cohort = report["cohort"]
    print(f"{cohort['visits_scored']} visits of {cohort['patients_with_scored_visits']} patients; "
          f"{100 * cohort['unknown_share']:.1f}% of the target codes outside the vocabulary")
    print("Recall@10 / @20 (ICD-10 categories):")
    for method, r10, r20 in summary_rows(report):
        print(f"  {method:<22} {r10 if r10 is None else f'{r10:.3f}'} / {r20 if r20 is None else f'{r20:.3f}'}")
    print(f"report: {Path(args.output) / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
