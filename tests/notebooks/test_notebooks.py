"""Execute every Colab notebook end to end in smoke mode (TFFT_SMOKE=1: offline, tiny, < 1 min).

Each notebook runs in a fresh kernel with a temporary working directory; a cell that raises
fails the test with the cell's source and traceback. One notebook trains smoke mode's own
backbone, EfficientNet-Lite0 with its real ImageNet weights (`REAL_BACKBONE`); the others name the
suite's two-convolution `keras:` backbone (`TFFT_SMOKE_BACKBONE`): what they check is that every
cell runs against today's API, and Lite0's graph took most of their time (50-80 s each).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import TINY_BACKBONE

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NAMES = ["01_quickstart", "02_your_own_images", "03_freezing_schedules", "04_export_and_deploy"]
CELL_TIMEOUT_S = 300
# The notebook that runs smoke mode as a user does, on Lite0's ImageNet weights: the cheapest of the
# four on Lite0 (126 s against 178-277 s under load), and its `bn: frozen` meets real BatchNorm layers.
REAL_BACKBONE = "02_your_own_images"


def _kernel_env(tmp_path: Path, name: str) -> dict[str, str]:
    # TMPDIR: the notebooks' tempfile.mkdtemp() folders land in pytest's tmp_path.
    env = dict(os.environ, TFFT_SMOKE="1", TF_CPP_MIN_LOG_LEVEL="3", MPLBACKEND="Agg",
               TMPDIR=str(tmp_path))
    env.pop("TFFT_SMOKE_BACKBONE", None)
    if name != REAL_BACKBONE:
        env["TFFT_SMOKE_BACKBONE"] = TINY_BACKBONE
    # The kernel must import the tfft under test, whichever directory it starts in.
    repo = str(NOTEBOOKS.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, env.get("PYTHONPATH")) if p)
    # Put this interpreter's bin/ first so `python3` kernels resolve to the same environment.
    env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
    return env


def test_notebooks_are_committed_without_outputs():
    for name in NAMES:
        nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
        first = nb.cells[0]
        assert first.cell_type == "markdown"
        assert f"colab.research.google.com/github/tfft-dev/tfft/blob/main/notebooks/{name}.ipynb" in first.source
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{name}: outputs committed"
        sources = "\n".join(c.source for c in nb.cells)
        assert 'os.environ.get("TFFT_SMOKE") == "1"' in sources
        # smoke mode's default: Lite0 with its ImageNet weights (the suite swaps it but in REAL_BACKBONE)
        assert 'os.environ.get("TFFT_SMOKE_BACKBONE", "efficientnet_lite0")' in sources
        assert 'f"model.backbone={SMOKE_BACKBONE}", "model.weights=imagenet"' in sources
        assert "pip" in sources and "list_physical_devices" in sources


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES[:2])
def test_notebook_runs_in_smoke_mode(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    run_notebook(name, tmp_path, monkeypatch)


def run_notebook(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Execute one notebook in a fresh kernel; fail with the cell's traceback if one raises.

    The other two notebooks run from `test_notebooks_deploy.py`: `make test` hands whole files to
    its two pytest-xdist workers, and four notebooks (about 4.5 minutes) in one file kept one
    worker busy while the other idled.
    """
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    env = _kernel_env(tmp_path, name)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    client = nbclient.NotebookClient(
        nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    start = time.monotonic()
    try:
        client.execute(env=env)
    except nbclient.exceptions.CellExecutionError as exc:
        pytest.fail(f"{name}: a cell failed:\n{exc}", pytrace=False)
    elapsed = time.monotonic() - start
    print(f"{name}: {elapsed:.1f} s")
    errors = [out for cell in nb.cells if cell.cell_type == "code"
              for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    assert not errors
    assert not list(tmp_path.glob("runs")), "smoke mode must not write runs/ into the working directory"
