"""Preprocess raw EHR tables into Megatron-Core indexed datasets (see docs/data.md).

    python tools/preprocess_ehr.py --source mimic-iv --input DIR --output-dir OUT [--strict] [--tokenizer-dir DIR]
    python tools/preprocess_ehr.py --retokenize OUT --tokenizer-dir SHARED_TOKENIZER --output-dir OUT2
"""

from __future__ import annotations

import sys

from sparseehr_mcore.data.cli import build_parser, check_mode, config_from_args, retokenize_config_from_args
from sparseehr_mcore.data.ledger import PreprocessError
from sparseehr_mcore.data.preprocess import run_preprocess
from sparseehr_mcore.data.retokenize import run_retokenize


def main(argv: list[str] | None = None) -> int:
    """Parse flags, run the pipeline, print a one-line summary. Returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_mode(parser, args)
    try:
        if args.retokenize is not None:
            manifest = run_retokenize(retokenize_config_from_args(args))
        else:
            manifest = run_preprocess(config_from_args(args), phase=args.phase, shard=args.shard_index)
    except PreprocessError as err:
        parser.exit(2, f"preprocess_ehr.py: error: {err}\n")
    if args.phase != "finish" and args.phase != "all":
        print(f"phase {args.phase} done" + (f" (shard {args.shard_index})" if args.shard_index is not None else ""))
        return 0
    counts = manifest["counts"]
    if counts["empty_tables"]:
        print(f"preprocess_ehr.py: warning: empty input table(s) {', '.join(counts['empty_tables'])} (a header and "
              "no rows): listed in the manifest under counts.empty_tables; --strict refuses them", file=sys.stderr)
    print(
        f"{manifest['source']}: patients {counts['patients']['kept']}/{counts['patients']['read']}, "
        f"events {counts['events']['kept']}/{counts['events']['read']} kept, "
        f"tokens {sum(counts['tokens_written'].values())}, vocab {manifest['tokenizer']['vocab_size']} "
        f"-> {args.output_dir}/manifest.json"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
