"""Convert a SparseEHR Megatron-Core checkpoint to a Hugging Face Qwen2-MoE folder, or back.

  python tools/convert_checkpoint.py --to hf --input CKPT_DIR --output HF_DIR
  python tools/convert_checkpoint.py --to mcore --input HF_DIR --output CKPT_DIR

CKPT_DIR may be a run root (its latest checkpoint is used) or one iter_* directory, saved under any
TP/PP/EP layout. Conversion runs in one process on CPU. See docs/export.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--to", choices=["hf", "mcore"], required=True, help="target format: hf (Hugging Face) or mcore")
    add("--input", required=True, type=Path,
        help="--to hf: checkpoint (run root or iter_* dir); --to mcore: Hugging Face folder")
    add("--output", required=True, type=Path,
        help="folder to write: absent, or an earlier output of the same direction (replaced once the new one is "
        "complete); checked before any work")
    add("--overwrite", action="store_true",
        help="replace an --output folder holding files this tool did not write (default: refuse it)")
    add("--tokenizer", type=Path, default=None,
        help="--to hf: saved SparseEHR tokenizer folder (default: the checkpoint's tokenizer/)")
    add("--no-tokenizer", action="store_true", help="--to hf: export weights without a tokenizer when none is found")
    add("--data-description", default=None, help="--to hf: text for the model card's Data section")
    add("--metrics", type=Path, default=None, help="--to hf: JSON file {name: number} for the model card")
    add("--max-shard-gb", type=float, default=2.0, help="--to hf: largest safetensors shard in GiB (default 2)")
    gate = parser.add_mutually_exclusive_group()
    gate.add_argument("--shared-expert-gate", dest="shared_expert_gate", action="store_true", default=None,
                      help="--to mcore: keep Hugging Face's shared-expert gate (a gated model)")
    gate.add_argument("--no-shared-expert-gate", dest="shared_expert_gate", action="store_false",
                      help="--to mcore: an ungated shared expert (the gate must be zero); default: config.json's choice")
    add("--iteration", type=int, default=0, help="--to mcore: iteration recorded in the checkpoint metadata")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the conversion; returns the exit status (0 on success, 2 on bad input)."""
    args = parse_args(argv)
    # Imported here so that --help is fast and needs no Megatron-Core.
    from sparseehr_mcore.config import ConfigError
    from sparseehr_mcore.export.hf_qwen2_moe import ExportOptions, export_to_hf, import_from_hf
    from sparseehr_mcore.export.kinds import ConversionError
    from sparseehr_mcore.export.safetensors_io import DEFAULT_SHARD_BYTES
    from sparseehr_mcore.outputs import OutputError

    try:
        if not args.input.exists():
            raise FileNotFoundError(f"--input {args.input} does not exist")
        if args.to == "hf":
            metrics = json.loads(args.metrics.read_text(encoding="utf-8")) if args.metrics else None
            options = ExportOptions(
                tokenizer_dir=args.tokenizer,
                require_tokenizer=not args.no_tokenizer,
                data_description=args.data_description,
                metrics=metrics,
                max_shard_bytes=int(args.max_shard_gb * 1024**3) if args.max_shard_gb else DEFAULT_SHARD_BYTES,
                overwrite=args.overwrite,
            )
            export_to_hf(args.input, args.output, options=options)
        else:
            import_from_hf(args.input, args.output, shared_expert_gate=args.shared_expert_gate, iteration=args.iteration,
                           overwrite=args.overwrite)
    except (ConversionError, ConfigError, FileNotFoundError, OutputError, json.JSONDecodeError) as error:
        print(f"convert_checkpoint: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
