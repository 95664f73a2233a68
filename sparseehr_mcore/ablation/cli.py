"""Command-line flags of tools/ablate_dense_prefix.py and their translation into `AblationConfig`."""

from __future__ import annotations

import argparse
import sys

from sparseehr_mcore.ablation.config import AblationConfig
from sparseehr_mcore.config import PRESETS, ConfigError
from sparseehr_mcore.outputs import OutputError, OutputKind, check_output_dir

DEFAULT_SCALE = "small"
HELP = AblationConfig.HELP
ABLATION_OUTPUTS = OutputKind(flag="--output-dir", own=("ablation.json", "ablation.md", "ablation.png"))


def _dense_prefixes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 0,2,4,8; got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (built on demand, never at import)."""
    parser = argparse.ArgumentParser(
        prog="ablate_dense_prefix.py",
        description="The dense-prefix ablation of the paper's appendix Table 4: the same architecture with D "
        "dense leading layers for each D asked for, trained side by side in one process on the same batches "
        "(steps alternate between the variants), then validated. Writes ablation.json, ablation.md (a table "
        "shaped like Table 4 with ratio columns) and ablation.png into --output-dir. See docs/benchmarks.md.",
    )
    what = parser.add_argument_group("what to compare")
    source = what.add_mutually_exclusive_group()
    source.add_argument("--scale", choices=sorted(PRESETS), default=None, help=HELP["scale"] + f" (default: {DEFAULT_SCALE})")
    source.add_argument("--model-config", metavar="FILE.yaml", dest="model_file", help=HELP["model_file"])
    what.add_argument("--dense-prefix", type=_dense_prefixes, default=(0, 2, 4, 8), metavar="D,D,...",
                      dest="dense_prefixes", help=HELP["dense_prefixes"] + " (default: 0,2,4,8)")
    what.add_argument("--seq-length", type=int, default=None, metavar="N", help=HELP["seq_length"])
    io = parser.add_argument_group("data and outputs")
    io.add_argument("--data", required=True, metavar="DIR", dest="data_dir", help=HELP["data_dir"])
    io.add_argument("--output-dir", default="outputs/ablation", metavar="DIR", help=HELP["output_dir"] + " (default: outputs/ablation)")
    io.add_argument("--overwrite", action="store_true", help=HELP["overwrite"])
    run = parser.add_argument_group("training and measurement")
    run.add_argument("--steps", type=int, default=40, metavar="N", help=HELP["steps"] + " (default: 40)")
    run.add_argument("--untimed-steps", type=int, default=3, metavar="N", help=HELP["untimed_steps"] + " (default: 3)")
    run.add_argument("--micro-batch-size", type=int, default=4, metavar="N", help=HELP["micro_batch_size"] + " (default: 4)")
    run.add_argument("--global-batch-size", type=int, default=None, metavar="N", help=HELP["global_batch_size"])
    run.add_argument("--lr", type=float, default=1e-3, metavar="LR", help=HELP["lr"] + " (default: 1e-3)")
    run.add_argument("--warmup-steps", type=int, default=None, metavar="N", help=HELP["warmup_steps"])
    run.add_argument("--eval-iters", type=int, default=4, metavar="N", help=HELP["eval_iters"] + " (default: 4)")
    run.add_argument("--util-steps", type=int, default=None, metavar="N", help=HELP["util_steps"])
    run.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp8"), default="auto", help=HELP["precision"])
    run.add_argument("--seed", type=int, default=1234, metavar="N", help=HELP["seed"] + " (default: 1234)")
    run.add_argument("--log-interval", type=int, default=None, metavar="N", help=HELP["log_interval"])
    return parser


def config_from_args(args: argparse.Namespace) -> AblationConfig:
    """The AblationConfig the parsed flags describe (a preset unless a model file is given)."""
    values = dict(vars(args))
    if values["scale"] is None and values["model_file"] is None:
        values["scale"] = DEFAULT_SCALE
    return AblationConfig(**values)


def main(argv: list[str] | None = None) -> int:
    """Parse, run every variant, write the report, print the table. Returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # Imported here: `--help` and flag errors should not pay for Megatron-Core's import.
    from sparseehr_mcore.ablation.report import markdown_table, write_report
    from sparseehr_mcore.ablation.runner import run_ablation

    try:
        config = config_from_args(args)
        # Before any training: an output folder that cannot be written fails in seconds, not after it.
        check_output_dir(config.output_dir, kind=ABLATION_OUTPUTS, overwrite=config.overwrite)
        result = run_ablation(config, log=lambda line: print(line, flush=True))
    except (ConfigError, FileNotFoundError, OutputError) as err:
        parser.exit(2, f"ablate_dense_prefix.py: error: {err}\n")
    paths = write_report(result, config.output_dir)
    print(markdown_table(result), flush=True)
    print("wrote " + ", ".join(str(path) for path in paths.values()), file=sys.stderr)
    return 0
