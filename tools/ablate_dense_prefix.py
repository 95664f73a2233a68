#!/usr/bin/env python
"""The dense-prefix ablation (paper appendix Table 4) at a chosen scale, side by side in one process.

    python tools/ablate_dense_prefix.py --data PREPROCESSED_DIR [--scale tiny|small|paper | --model-config FILE.yaml]
        [--dense-prefix 0,2,4,8] [--steps N] [--output-dir OUT]

Writes OUT/ablation.json, OUT/ablation.md and OUT/ablation.png; `--help` explains every flag.
"""

import sys

from sparseehr_mcore.ablation.cli import main

if __name__ == "__main__":
    sys.exit(main())
