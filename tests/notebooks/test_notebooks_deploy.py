"""Notebooks 03 (freezing schedules) and 04 (export), in smoke mode; see `test_notebooks.run_notebook`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.notebooks.test_notebooks import NAMES, run_notebook


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES[2:])
def test_notebook_runs_in_smoke_mode(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    run_notebook(name, tmp_path, monkeypatch)
