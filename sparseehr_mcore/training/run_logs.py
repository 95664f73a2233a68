"""Where a run's logged values go: tensorboard scalars and `metrics.jsonl`, from the logging rank,
continued without duplicates when a run resumes.

A run killed after its last checkpoint has logged steps that the resumed run trains again. On
resume (`RunLogger.start`) both logs are cut back to the restored step: `metrics.jsonl` is rewritten
without its later rows (atomically), and tensorboard is told to drop its later events (the
`purge_step` of its writer, which tensorboard applies when it reads the directory). The logs of a
resumed run then hold each step once, as an uninterrupted run's do.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path


def cut_metrics_file(path: Path, *, after_step: int) -> tuple[int, int]:
    """Drop the rows of `path` logged for steps after `after_step`, and any unreadable line (a row
    cut short by a kill), rewriting the file atomically.

    Returns:
        (rows dropped for later steps, unreadable lines dropped).
    """
    kept, later, unreadable = [], 0, 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            step = json.loads(line)["step"]
        except (json.JSONDecodeError, KeyError, TypeError):
            unreadable += 1
            continue
        if step > after_step:
            later += 1
        else:
            kept.append(line + "\n")
    if later or unreadable:
        temporary = path.with_suffix(".tmp")
        temporary.write_text("".join(kept), encoding="utf-8")
        os.replace(temporary, path)
    return later, unreadable


class RunLogger:
    """Tensorboard scalars and a JSON-lines metrics file, from the logging rank (`enabled`)."""

    def __init__(self, tensorboard_dir: str | Path | None, *, metrics_file: str | Path | None, enabled: bool) -> None:
        self.enabled = enabled
        self.tensorboard_dir = tensorboard_dir if enabled else None
        self.metrics_file = Path(metrics_file) if (enabled and metrics_file) else None
        self.writer = None

    def start(self, *, after_step: int, log=print) -> None:
        """Open the logs for a run that continues after `after_step` (0: from the start), dropping
        whatever an earlier process of this run logged for later steps."""
        if self.metrics_file is not None and self.metrics_file.is_file():
            later, unreadable = cut_metrics_file(self.metrics_file, after_step=after_step)
            if later or unreadable:
                log(
                    f"{self.metrics_file}: dropped {later} rows of steps after {after_step} (they run again)"
                    + (f" and {unreadable} unreadable lines" if unreadable else "")
                )
        if self.tensorboard_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            # Tensorboard drops the events of earlier event files at steps >= purge_step.
            self.writer = SummaryWriter(log_dir=str(self.tensorboard_dir), purge_step=after_step + 1)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        finite = {name: float(v) for name, v in values.items() if v is not None and math.isfinite(float(v))}
        if self.writer is not None:
            for name, value in finite.items():
                self.writer.add_scalar(name, value, step)
            # On disk at once, not every two minutes: a killed run keeps what it logged.
            self.writer.flush()
        if self.metrics_file is not None:
            with self.metrics_file.open("a", encoding="utf-8") as stream:
                stream.write(json.dumps({"step": step, **finite}) + "\n")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
