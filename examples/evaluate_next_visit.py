"""Zero-shot next-visit diagnosis prediction of a SparseEHR checkpoint (see docs/evaluation.md).

    python examples/evaluate_next_visit.py --checkpoint RUN_OR_HF_DIR --data PREPROCESSED_DIR --output REPORT_DIR
"""

from __future__ import annotations

import sys


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
    print(f"\nZero-shot next-visit diagnosis prediction: {cohort['visits_scored']} visits of "
          f"{cohort['patients_with_scored_visits']} patients; {100 * cohort['unknown_share']:.1f}% of the target "
          "codes outside the vocabulary (counted as misses in report.md's 'unknown counted' columns)")
    categories, tokens = summary_rows(report, "category"), summary_rows(report, "token")
    print(f"{'method':<22} | {'R@10 (ICD-10 category)':>22} | {'R@20':>6} | {'R@10 (token)':>12} | {'R@20':>6}")
    for (method, c10, c20), (_, t10, t20) in zip(categories, tokens):
        cells = [f"{v:.3f}" if v is not None else "-" for v in (c10, c20, t10, t20)]
        print(f"{method:<22} | {cells[0]:>22} | {cells[1]:>6} | {cells[2]:>12} | {cells[3]:>6}")
    print(f"written: {args.output}/report.md, report.json, *.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
