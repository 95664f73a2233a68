"""Row accounting: counts by reason, strict mode, and the read = kept + dropped check."""

from __future__ import annotations

import polars as pl
import pytest

from sparseehr_mcore.data.ledger import BadRecordError, Ledger, PreprocessError


def rows(*numbers: int) -> pl.DataFrame:
    return pl.DataFrame({"_table": ["events"] * len(numbers), "_row": list(numbers), "code": ["X"] * len(numbers)})


def test_counts_by_reason_merge_and_balance():
    first, second = Ledger(files={"events": "/data/events.csv"}), Ledger()
    first.read("events", 5)
    first.drop_frame(rows(4, 2), "bad_date")
    second.read("events", 3)
    second.keep("events", 5)
    second.drop_one("events", "duplicate_row", row=7, detail="x")
    first.merge(second)
    assert first.tables["events"].to_dict() == {"read": 8, "kept": 5, "dropped": {"bad_date": 2, "duplicate_row": 1}}
    first.check_balanced()
    assert first.examples["bad_date"][0].startswith("events: data row 2: bad_date")  # sorted by row, no path
    restored = Ledger.from_dict(first.to_dict())
    assert restored.to_dict() == first.to_dict()
    first.keep("events", 1)
    with pytest.raises(PreprocessError, match="read 8 != kept 6"):
        first.check_balanced()


def test_strict_raises_at_the_first_row_with_its_file():
    ledger = Ledger(files={"events": "/data/events.csv"}, strict=True)
    with pytest.raises(BadRecordError, match=r"/data/events.csv: data row 3: missing_value .*code=X"):
        ledger.drop_frame(rows(9, 3), "missing_value")


def test_unknown_reasons_are_a_programming_error():
    with pytest.raises(ValueError, match="unknown drop reason"):
        Ledger().drop_one("events", "looks_odd", row=1, detail="")


def test_drop_where_counts_matching_rows_and_passes_clean_frames_through():
    ledger = Ledger()
    frame = pl.DataFrame({"code": ["A", None, "B"], "_table": ["events"] * 3, "_row": [1, 2, 3]})
    kept = ledger.drop_where(frame, pl.col("code").is_null(), "missing_value")
    assert kept["_row"].to_list() == [1, 3]
    assert ledger.tables["events"].dropped == {"missing_value": 1}
    assert ledger.examples["missing_value"] == ["events: data row 2: missing_value "
                                                 "(a required field (id, date or code) is empty): code=None"]
    assert ledger.drop_where(kept, pl.col("code").is_null(), "missing_value") is kept
    with pytest.raises(BadRecordError, match="data row 2"):
        Ledger(strict=True).drop_where(frame, pl.col("code").is_null(), "missing_value")
