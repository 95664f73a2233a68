"""One frozen vocabulary over several preprocessed sources (see docs/data.md, "Multi-source corpora").

    python tools/build_vocab.py --inputs OUT_CLAIMS OUT_HOSPITAL --output SHARED_TOKENIZER [--min-count N]
    python tools/preprocess_ehr.py --retokenize OUT_CLAIMS --tokenizer-dir SHARED_TOKENIZER --output-dir NEW_DIR
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sparseehr_mcore.data.ledger import PreprocessError
from sparseehr_mcore.data.shared_vocab import build_shared_vocab


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="build_vocab.py",
        description="Merge the training-split term counts (tokenizer/term_counts.json) of several outputs of "
        "tools/preprocess_ehr.py into one frozen tokenizer; then re-encode each output with it "
        "(tools/preprocess_ehr.py --retokenize DIR --tokenizer-dir OUTPUT --output-dir NEW) and blend them in "
        "training (docs/data.md, 'Multi-source corpora').",
    )
    parser.add_argument("--inputs", nargs="+", required=True, type=Path, metavar="DIR",
                        help="preprocessed directories, each with a vocabulary of its own; they must share the "
                        "tokenizer plugin, its bundle order and the harmonisation rules")
    parser.add_argument("--output", required=True, type=Path, metavar="TOKDIR",
                        help="new (or empty) directory for the shared tokenizer, its merged term_counts.json and "
                        "vocab_sources.json (what it was built from)")
    parser.add_argument("--min-count", type=int, default=1,
                        help="keep a term if it occurs this often in the training splits together (default 1)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse flags, build the vocabulary, print a one-line summary. Returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        tokenizer = build_shared_vocab(args.inputs, args.output, min_count=args.min_count)
    except PreprocessError as err:
        parser.exit(2, f"build_vocab.py: error: {err}\n")
    print(f"{tokenizer.name}: vocab {tokenizer.vocab_size} from {len(args.inputs)} sources -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
