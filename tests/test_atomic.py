"""Atomic writes: fsync'd, renamed into place, with the mode an ordinary open() gives."""

from __future__ import annotations

import os
import stat

import pytest

from tfft import atomic


@pytest.fixture
def umask_027():
    previous = os.umask(0o027)
    yield
    os.umask(previous)


def test_written_files_get_the_umask_mode_and_the_umask_is_never_touched(tmp_path, umask_027, monkeypatch):
    def no_umask(mask):
        raise AssertionError("the process umask was changed")

    monkeypatch.setattr(os, "umask", no_umask)
    atomic.write_json(tmp_path / "metrics.json", {"val": {"loss": float("nan")}})
    atomic.write_text(tmp_path / "config.yaml", "name: x\n")
    atomic.write_csv(tmp_path / "history.csv", [{"epoch": 1, "loss": 0.5}], ["epoch", "loss"])
    for name in ("metrics.json", "config.yaml", "history.csv"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640, name
    assert (tmp_path / "metrics.json").read_text() == '{\n  "val": {\n    "loss": null\n  }\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "history.csv", "metrics.json"]


def test_a_failed_write_leaves_the_previous_file(tmp_path):
    target = tmp_path / "a.txt"
    atomic.write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]
