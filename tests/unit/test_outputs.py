"""The shared output-folder checks (issue 13, item 3): refused in one line before any work,
nothing left behind by the check, foreign files only with overwrite, never a mix of old and new."""

from __future__ import annotations

import os

import pytest

from sparseehr_mcore.outputs import OutputError, OutputKind, check_output_dir, clear_output_dir, staged_output

KIND = OutputKind(flag="--out", own=("report.json", "*.png", "parts"))
as_root = pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")


def test_a_path_under_a_file_is_refused_in_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    for path in (tmp_path / "file", tmp_path / "file" / "out", tmp_path / "file" / "a" / "b"):
        with pytest.raises(OutputError) as refused:
            check_output_dir(path, kind=KIND, overwrite=True)
        assert "\n" not in str(refused.value) and str(path) in str(refused.value)


@as_root
def test_a_read_only_parent_is_refused(tmp_path):
    parent = tmp_path / "locked"
    parent.mkdir(mode=0o500)
    try:
        with pytest.raises(OutputError, match="locked is not writable"):
            check_output_dir(parent / "out", kind=KIND, overwrite=False)
        with pytest.raises(OutputError, match="cannot write in it"):
            check_output_dir(parent, kind=KIND, overwrite=False)
    finally:
        parent.chmod(0o700)


def test_the_probe_leaves_nothing_behind(tmp_path):
    check_output_dir(tmp_path / "a" / "b" / "out", kind=KIND, overwrite=False)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "out").mkdir()
    check_output_dir(tmp_path / "out", kind=KIND, overwrite=False)
    assert list((tmp_path / "out").iterdir()) == []


def test_own_outputs_pass_and_foreign_files_need_overwrite(tmp_path):
    out = tmp_path / "out"
    (out / "parts").mkdir(parents=True)
    (out / "report.json").write_text("{}")
    (out / "curve.png").write_text("")
    check_output_dir(out, kind=KIND, overwrite=False)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match=r"holds files this tool did not write \(notes.txt\): pass --overwrite"):
        check_output_dir(out, kind=KIND, overwrite=False)
    check_output_dir(out, kind=KIND, overwrite=True)
    clear_output_dir(out)
    assert out.is_dir() and list(out.iterdir()) == []


def test_a_staged_output_replaces_the_old_folder_whole(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.png").write_text("old")
    with staged_output(out) as staging:
        assert not (staging / "old.png").exists()
        (staging / "report.json").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["report.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging or old folder left
    with pytest.raises(RuntimeError), staged_output(out) as staging:
        (staging / "report.json").write_text("half")
        raise RuntimeError("interrupted")
    assert (out / "report.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
