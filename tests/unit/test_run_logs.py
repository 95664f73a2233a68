"""A resumed run's logs: metrics.jsonl and tensorboard cut back to the restored step."""

from __future__ import annotations

import json

from sparseehr_mcore.training.run_logs import RunLogger, cut_metrics_file


def test_rows_after_the_restored_step_and_a_cut_line_are_dropped(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [{"step": step, "train/lm_loss": 1.0 / step} for step in range(1, 15)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows) + '{"step": 15, "train/lm')
    assert cut_metrics_file(path, after_step=10) == (4, 1)
    assert [json.loads(line) for line in path.read_text().splitlines()] == rows[:10]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl"]  # written atomically, nothing left over
    assert cut_metrics_file(path, after_step=10) == (0, 0)


def test_tensorboard_drops_the_events_an_earlier_process_logged_past_the_restored_step(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    lines = []
    killed = RunLogger(tmp_path / "tb", metrics_file=tmp_path / "metrics.jsonl", enabled=True)
    killed.start(after_step=0, log=lines.append)
    for step in range(1, 15):
        killed.scalars(step, {"train/lm_loss": float(step)})
    # (not closed: the process was killed; the events are on disk all the same)
    resumed = RunLogger(tmp_path / "tb", metrics_file=tmp_path / "metrics.jsonl", enabled=True)
    resumed.start(after_step=10, log=lines.append)
    for step in range(11, 21):
        resumed.scalars(step, {"train/lm_loss": 100.0 + step})
    resumed.close()

    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={SCALARS: 0})
    events.Reload()
    logged = [(event.step, event.value) for event in events.Scalars("train/lm_loss")]
    assert logged == [(step, float(step)) for step in range(1, 11)] + [(step, 100.0 + step) for step in range(11, 21)]
    assert [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == list(range(1, 21))
    assert lines == [f"{tmp_path / 'metrics.jsonl'}: dropped 4 rows of steps after 10 (they run again)"]
