#!/usr/bin/env python
"""Parameter and FLOP accounting: `python tools/model_stats.py --preset paper [--dense-prefix D] [--json]`."""

import sys

from sparseehr_mcore.model.stats_cli import main

if __name__ == "__main__":
    sys.exit(main())
