"""Every user mistake exits 2 with one line naming the key or path, and no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from tests.conftest import tiny_config, write_image_folder


def _case(tmp_path, name):
    """Return (config dict or raw YAML text, extra CLI args, text the message must contain)."""
    cfg = tiny_config()
    if name == "unknown key":
        cfg["data"]["imgsize"] = 3
        return cfg, [], "data.imgsize"
    if name == "wrong type":
        cfg["data"]["batch_size"] = "big"
        return cfg, [], "data.batch_size"
    if name == "unknown backbone":
        cfg["model"]["backbone"] = "resnet5O"
        return cfg, [], "model.backbone"
    if name == "missing path":
        cfg["data"]["source"] = str(tmp_path / "no-such-folder")
        return cfg, [], "no-such-folder"
    if name == "bad unfreeze":
        cfg["schedule"] = {"phases": [{"name": "x", "epochs": 1, "unfreeze": "top-2"}]}
        return cfg, [], "unfreeze"
    if name == "negative batch":
        cfg["data"]["batch_size"] = -4
        return cfg, [], "data.batch_size"
    if name == "yaml syntax":
        return "data: {source: [oops\n", [], "YAML"
    if name == "malformed --set":
        return cfg, ["--set", "data.batch_size"], "--set"
    if name == "missing weights file":
        cfg["model"]["weights"] = str(tmp_path / "missing.weights.h5")
        return cfg, [], "model.weights"
    if name == "image too small":
        cfg["model"]["backbone"] = "inception_v3"
        cfg["data"]["image_size"] = [32, 32]
        return cfg, [], "data.image_size"
    if name == "empty dataset":
        (tmp_path / "empty").mkdir()
        cfg["data"]["source"] = str(tmp_path / "empty")
        return cfg, [], "empty"
    if name == "empty class":
        root = write_image_folder(tmp_path / "imgs", {"a": 4, "b": 4})
        (root / "c").mkdir()
        cfg["data"]["source"] = str(root)
        return cfg, [], str(root / "c")
    if name == "missing config":
        return None, [], "nope.yaml"
    if name == "unknown preset":
        cfg["schedule"] = {"preset": "twophase"}
        return cfg, [], "schedule.preset"
    raise AssertionError(name)


CASES = ["unknown key", "wrong type", "unknown backbone", "missing path", "bad unfreeze", "negative batch",
         "yaml syntax", "malformed --set", "missing weights file", "image too small", "empty dataset",
         "empty class", "missing config", "unknown preset"]


@pytest.mark.parametrize("name", CASES)
def test_user_mistake_exit_2(tmp_path, name, cli_runner):
    cfg, args, needle = _case(tmp_path, name)
    path = tmp_path / "nope.yaml"
    if cfg is not None:
        path = tmp_path / "c.yaml"
        path.write_text(cfg if isinstance(cfg, str) else yaml.safe_dump(cfg))
    result = cli_runner("train", path, "--run-dir", tmp_path / "run", *args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    assert needle in lines[0], lines[0]
    assert "Traceback" not in result.output
    # Refused before the first epoch (by the pre-TensorFlow check or while reading the data): no
    # half-made run directory is left behind.
    assert not (tmp_path / "run").exists()


def test_debug_shows_the_traceback(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {batch_size: -1}\n")
    out = subprocess.run([sys.executable, "-m", "tfft.cli.main", "--debug", "config", "show", str(path)],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" in out.stderr
