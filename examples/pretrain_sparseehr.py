#!/usr/bin/env python
"""Pretrain SparseEHR on indexed datasets written by tools/preprocess_ehr.py.

    torchrun --nproc_per_node N examples/pretrain_sparseehr.py --config FILE.yaml [--SECTION.FIELD VALUE ...]

The YAML file has the sections model, parallel, data, train, checkpoint, logging (see
examples/configs/); every field is also a flag below, whose metavar says what it accepts: lists are
YAML flow lists (--data.preprocessed_dirs [a,b]), and `null` unsets an optional field. The resolved
config is checked before any compute and saved as SAVE_DIR/run_config.yaml. A single process needs
no torchrun.
"""

from __future__ import annotations

import argparse
import os
import sys

from sparseehr_mcore.config import ConfigError
from sparseehr_mcore.config.run import build_override_parser, load_run_values, resolve_run_config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", metavar="FILE.yaml", help="run config file (sections: model, parallel, data, train, checkpoint, logging)")
    build_override_parser(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    config_path = args.pop("config")
    # Megatron-Core (and torch) load only now that there is a run to train: --help stays instant.
    from sparseehr_mcore.training.inputs import tokenizer_vocab_size
    from sparseehr_mcore.training.loop import pretrain

    try:
        values = load_run_values(config_path)
        run = resolve_run_config(
            values,
            args,
            tokenizer_vocab_size=tokenizer_vocab_size,
            world_size=int(os.environ.get("WORLD_SIZE", "1")),  # torchrun's; a plain python run is one process
            where=config_path or "command line",
        )
        pretrain(run)
    except (ConfigError, FileNotFoundError) as err:
        # Every rank runs the same checks on the same inputs and meets the same problem: one
        # message (from global rank 0, as torchrun numbers them) says it; every rank exits 2.
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
