"""Progress bars of the preprocessing phases, drawn by the parent process only.

Workers never draw: the parent advances a phase's bar as each task's result comes back (by task, or
by input bytes for staging and hashing), so a terminal shows one bar per phase whatever
`--workers` is. Bars are on by default when stderr is a terminal and off when it is piped or
`--quiet` is given (`wanted`).
"""

from __future__ import annotations

import sys

from tqdm import tqdm


def wanted(*, quiet: bool) -> bool:
    """Whether to draw bars: stderr is a terminal and `--quiet` was not given."""
    return not quiet and sys.stderr.isatty()


def phase_bar(desc: str, *, total: int, enabled: bool, in_bytes: bool = False) -> tqdm:
    """A bar for one phase (or step of `finish`); `in_bytes` counts input bytes (shown as MB, GB)."""
    if in_bytes:
        return tqdm(total=total, desc=desc, disable=not enabled, unit="B", unit_scale=True, unit_divisor=1024)
    return tqdm(total=total, desc=desc, disable=not enabled, unit="task")
