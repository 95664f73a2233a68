"""tools/preprocess_ehr.py's --output-dir (issue 13, item 3): refused in one line before any work
when it cannot be written or holds files the tool did not write; --overwrite gives a clean folder."""

from __future__ import annotations

import os

import pytest

from sparseehr_mcore.data.manifest import MANIFEST_FILE, read_manifest


@pytest.fixture
def tables(tmp_path):
    directory = tmp_path / "in"
    directory.mkdir()
    (directory / "patients.csv").write_text("patient_id,sex,birth_year,region\np1,F,1950,NE\np2,M,1960,S\np3,F,1970,W\n")
    (directory / "events.csv").write_text(
        "patient_id,date,code_system,code\n"
        + "".join(f"{p},2020-0{m}-01,ICD10CM,{c}\n" for p in ("p1", "p2", "p3") for m, c in ((1, "E11.9"), (2, "I10")))
    )
    return directory


def refused(preprocess_main, capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as stopped:
        preprocess_main(list(argv))
    assert stopped.value.code == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and "Traceback" not in message, message
    return message


def test_an_output_under_a_file_is_one_line(tables, tmp_path, preprocess_main, capsys):
    (tmp_path / "file").write_text("in the way")
    out = tmp_path / "file" / "out"
    message = refused(preprocess_main, capsys, "--source", "events", "--input", str(tables), "--output-dir", str(out))
    assert f"--output-dir {out}: cannot create it" in message and "is a file" in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_output_is_one_line(tables, tmp_path, preprocess_main, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        message = refused(preprocess_main, capsys, "--source", "events", "--input", str(tables), "--output-dir", str(locked / "out"))
        assert "not writable" in message
    finally:
        locked.chmod(0o700)


def test_foreign_files_are_refused_and_overwrite_leaves_no_stale_file(tables, tmp_path, preprocess_main, capsys):
    out = tmp_path / "out"
    argv = ["--source", "events", "--input", str(tables), "--output-dir", str(out)]
    assert preprocess_main(argv) == 0
    fresh = sorted(p.name for p in out.iterdir())
    assert preprocess_main(argv) == 0  # its own earlier outputs are no obstacle
    (out / "notes.txt").write_text("not the tool's")
    (out / "old-release").mkdir()
    message = refused(preprocess_main, capsys, *argv)
    assert "holds files this tool did not write (notes.txt, old-release)" in message and "--overwrite" in message
    assert (out / "notes.txt").is_file() and (out / MANIFEST_FILE).is_file()  # refused before touching anything
    assert preprocess_main([*argv, "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == fresh
    assert "overwrite" not in read_manifest(out)["flags"]  # it changes no output byte
