"""The README's Deploy snippets, run as written against a tiny exported run: ONNX Runtime,
OpenVINO and LiteRT in a fresh Python that never imports TensorFlow; the SavedModel in TensorFlow."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
RUNTIMES = {"onnxruntime": "onnxruntime", "openvino": "openvino", "litert": "ai_edge_litert",
            "savedmodel": "tensorflow"}


def snippets() -> dict[str, str]:
    """The README's `<!-- deploy: NAME -->` python blocks, by NAME."""
    found = re.findall(r"<!-- deploy: (\w+) -->\n```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    return dict(found)


def test_the_readme_has_one_snippet_per_runtime():
    assert set(snippets()) == {"common", *RUNTIMES}


@pytest.fixture(scope="module")
def workdir(deployed, pets_mini, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("snippets")
    (folder / "deploy").symlink_to(deployed[0], target_is_directory=True)
    shutil.copy(sorted((pets_mini / "val" / "cat").glob("*.jpg"))[0], folder / "photo.jpg")
    return folder


def run_snippet(name: str, folder: Path) -> str:
    code = snippets()["common"] + snippets()[name]
    if name != "savedmodel":
        code += "\nimport sys\nassert 'tensorflow' not in sys.modules, 'the snippet loaded TensorFlow'\n"
    proc = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def test_the_deploy_snippets_run_in_their_runtimes_without_tensorflow(workdir):
    printed = {}
    for name, module in RUNTIMES.items():
        if name == "savedmodel" or importlib.util.find_spec(module) is None:
            continue
        label, probability = run_snippet(name, workdir).rsplit(" ", 1)
        assert label in ("cat", "dog") and 0.5 <= float(probability) <= 1.0, (name, label, probability)
        printed[name] = label
    assert "onnxruntime" in printed
    # the same pixels in: the same decision
    assert len(set(printed.values())) == 1, printed


@pytest.mark.slow  # a fresh Python that imports TensorFlow: ~10 s here
def test_the_savedmodel_snippet_serves_the_photo_bytes(workdir):
    label, probability = run_snippet("savedmodel", workdir).rsplit(" ", 1)
    assert label in ("cat", "dog") and 0.5 <= float(probability) <= 1.0
