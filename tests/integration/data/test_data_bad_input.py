"""Every kind of bad input: counted by reason, or (with --strict) the first one stops the run."""

from __future__ import annotations

import pytest

from sparseehr_mcore.data.manifest import MANIFEST_FILE, read_manifest

EVENTS = [
    b"patient_id,date,code_system,code",
    b"p1,2020-01-01,ICD10CM,E11.9",  # kept
    b"p1,2020-01-01,ICD10CM,E11.9",  # duplicate_row
    b"p1,2020-02-30,ICD10CM,I10",  # bad_date
    b"p1,,ICD10CM,I10",  # missing_value
    b"p1,1492-10-12,ICD10CM,I10",  # impossible_date
    b"p1,2020-03-01,SNOMED,12345",  # unknown_code_system
    b"p1,2020-03-01,ICD10CM,11E",  # malformed_code
    b"p1,2020-03-01,ICD10CM",  # malformed_row
    b"p2,2020-03-01,ICD10CM,J45\xff",  # non_utf8
    b"p9,2020-03-01,ICD10CM,I10",  # unknown_patient
    b"p1,2020-04-01,ICD9CM,E9347",  # unmapped_code (no GEM entry, category maps to many)
    b"p1,2020-04-01,CPT,99213",  # kept
]
PATIENTS = [
    b"patient_id,sex,birth_year,region",
    b"p1,F,1950,NE",  # kept
    b"p2,M,1960,S",  # no_events (its only event is not UTF-8)
    b"p3,F,1970,W",  # no_events
    b"p1,F,1950,NE",  # duplicate_row
]


def write_tables(directory, events=EVENTS, patients=PATIENTS):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "events.csv").write_bytes(b"\n".join(events) + b"\n")
    (directory / "patients.csv").write_bytes(b"\n".join(patients) + b"\n")
    return directory


def test_each_bad_row_is_counted_by_reason(tmp_path, preprocess_main):
    tables = write_tables(tmp_path / "in")
    assert preprocess_main(["--source", "events", "--input", str(tables), "--output-dir", str(tmp_path / "out")]) == 0
    counts = read_manifest(tmp_path / "out")["counts"]
    assert counts["events"] == {
        "read": 12,
        "kept": 2,
        "dropped": {
            "bad_date": 1, "duplicate_row": 1, "impossible_date": 1, "malformed_code": 1, "malformed_row": 1,
            "missing_value": 1, "non_utf8": 1, "unknown_code_system": 1, "unknown_patient": 1, "unmapped_code": 1,
        },
    }  # fmt: skip
    assert counts["patients"] == {"read": 4, "kept": 1, "dropped": {"duplicate_row": 1, "no_events": 2}}
    assert counts["patients_written"]["train"] + counts["patients_written"]["valid"] + counts["patients_written"]["test"] == 1


def test_extra_code_systems_pass_through(tmp_path, preprocess_main):
    tables = write_tables(tmp_path / "in")
    out = tmp_path / "out"
    argv = ["--source", "events", "--input", str(tables), "--output-dir", str(out), "--extra-code-systems", "SNOMED"]
    assert preprocess_main(argv) == 0
    counts = read_manifest(out)["counts"]
    assert "unknown_code_system" not in counts["events"]["dropped"] and counts["events"]["kept"] == 3


def test_strict_stops_at_the_first_bad_row_with_its_location(tmp_path, preprocess_main, capsys):
    good = EVENTS[:2] + [EVENTS[3]] + EVENTS[-1:]  # one bad date, data row 2
    tables = write_tables(tmp_path / "in", events=good, patients=PATIENTS[:2])
    out = tmp_path / "out"
    assert preprocess_main(["--source", "events", "--input", str(tables), "--output-dir", str(out)]) == 0
    assert (out / MANIFEST_FILE).is_file()
    with pytest.raises(SystemExit) as stopped:
        preprocess_main(["--source", "events", "--input", str(tables), "--output-dir", str(out), "--strict"])
    assert stopped.value.code == 2
    message = capsys.readouterr().err
    assert "events.csv: data row 2: bad_date" in message and "2020-02-30" in message
    # The failed run removed the earlier manifest and left no dataset behind: nothing looks complete.
    assert not (out / MANIFEST_FILE).exists()
    assert not list(out.glob("*.bin")) and not (out / ".work").exists()


def test_strict_with_workers_names_the_first_bad_row_in_task_order(tmp_path, preprocess_main, capsys):
    """The patients table fails fast and the long events table late; the events table's row is
    first in task order, so it is the one named, however the processes share the tasks."""
    events = [EVENTS[0], *[b"p1,2020-01-01,ICD10CM,I10"] * 20000, EVENTS[3]]  # bad date: data row 20001
    tables = write_tables(tmp_path / "in", events=events, patients=[PATIENTS[0], b",F,1950,NE"])
    with pytest.raises(SystemExit) as stopped:
        preprocess_main(["--source", "events", "--input", str(tables), "--output-dir", str(tmp_path / "o"),
                         "--strict", "--workers", "2"])
    assert stopped.value.code == 2
    assert "events.csv: data row 20001: bad_date" in capsys.readouterr().err


def test_strict_names_malformed_rows_by_line(tmp_path, preprocess_main, capsys):
    tables = write_tables(tmp_path / "in", events=EVENTS[:2] + [EVENTS[8]], patients=PATIENTS[:2])
    with pytest.raises(SystemExit):
        preprocess_main(["--source", "events", "--input", str(tables), "--output-dir", str(tmp_path / "o"), "--strict"])
    message = capsys.readouterr().err
    assert "events.csv: data row 2: malformed_row" in message and "expected 4 fields, found 3" in message


def test_wrong_column_names_are_named(tmp_path, preprocess_main, capsys):
    tables = write_tables(tmp_path / "in", events=[b"pid,day,system,code", b"p1,2020-01-01,ICD10CM,I10"])
    with pytest.raises(SystemExit) as stopped:
        preprocess_main(["--source", "events", "--input", str(tables), "--output-dir", str(tmp_path / "o")])
    assert stopped.value.code == 2
    message = capsys.readouterr().err
    assert "missing column(s) patient_id, date, code_system" in message and "pid, day, system, code" in message


def test_missing_table_and_bad_flags_give_messages(tmp_path, preprocess_main, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as stopped:
        preprocess_main(["--source", "mimic-iv", "--input", str(tmp_path / "empty"), "--output-dir", str(tmp_path / "o")])
    assert stopped.value.code == 2 and "no patients, admissions, diagnoses_icd" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:
        preprocess_main(["--source", "events", "--input", str(tmp_path / "empty"), "--output-dir", str(tmp_path / "o"),
                         "--split", "0.5,0.6,0.1"])
    assert stopped.value.code == 2 and "summing to 1" in capsys.readouterr().err
    for years in (["--min-year", "0"], ["--min-year", "2000", "--max-year", "1999"], ["--max-year", "10000"]):
        with pytest.raises(SystemExit) as stopped:
            preprocess_main(["--source", "events", "--input", str(tmp_path / "empty"), "--output-dir", str(tmp_path / "o"),
                             *years])
        assert stopped.value.code == 2 and "need 1 <= min-year <= max-year <= 9999" in capsys.readouterr().err
    (tmp_path / "o" / "tokenizer").mkdir(parents=True)
    with pytest.raises(SystemExit) as stopped:
        preprocess_main(["--source", "events", "--input", str(tmp_path / "empty"), "--output-dir", str(tmp_path / "o"),
                         "--tokenizer-dir", str(tmp_path / "o" / "tokenizer")])
    assert stopped.value.code == 2 and "this run's own output" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:
        preprocess_main(["--source", "epic", "--input", ".", "--output-dir", "o"])
    assert stopped.value.code == 2 and "invalid choice: 'epic'" in capsys.readouterr().err


def test_a_file_staged_in_parts_gives_the_same_outputs_and_row_numbers(tmp_path, preprocess_main):
    """Cut into parts a few hundred bytes long, bad rows, blank lines and CRLF line ends included,
    the file gives the bytes (manifest examples with their row numbers too) of a whole-file read."""
    body = [line for _ in range(40) for line in (*EVENTS[1:], b"", b"p1,2020-05-01,CPT,99214\r")]
    tables = write_tables(tmp_path / "in", events=[EVENTS[0], *body])
    outputs = {}
    for part_mb in ("64", "0.0003"):
        out = tmp_path / f"out-{part_mb}"
        argv = ["--source", "events", "--input", str(tables), "--output-dir", str(out), "--part-mb", part_mb]
        assert preprocess_main([*argv, "--workers", "2" if part_mb != "64" else "1"]) == 0
        outputs[part_mb] = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert outputs["64"] == outputs["0.0003"]
    examples = read_manifest(tmp_path / "out-64")["drop_examples"]
    assert examples["malformed_row"][0].startswith("events: data row 8:")
    assert examples["duplicate_row"][1].startswith("events: data row 2:")
    assert examples["bad_date"][1].startswith("events: data row 16:")  # 13 rows a round: blank lines are not rows
