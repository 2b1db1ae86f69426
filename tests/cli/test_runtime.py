"""What every command runs inside (tfft/cli/runtime.py): no TensorFlow banner, each warning once,
details with --verbose, one plain device line."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO, tiny_config, write_image_folder
from tfft.cli.runtime import QuietTensorFlowImport, command_runtime
from tfft.config import DataConfig
from tfft.data import load_splits

DEVICE_LINE = re.compile(r"^(no GPU found, training on CPU|training on \d+ GPUs?: .+)$")


@pytest.mark.slow
def test_plain_train_prints_no_tensorflow_banner(tmp_path):
    """`tfft train` as a user types it (no TF_CPP_MIN_LOG_LEVEL): none of TensorFlow's C++ lines
    (`E0000 ... failed call to cuInit`, the absl::InitializeLog notice, twice), one device line."""
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(tiny_config()))
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TFFT_DEBUG")}
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run([sys.executable, "-m", "tfft", "train", "c.yaml", "--run-dir", "run"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    lines = (out.stdout + out.stderr).splitlines()
    tensorflow = [line for line in lines if re.match(r"^[IWEF]0000 |^WARNING: All log messages before absl", line)]
    assert not tensorflow, tensorflow
    assert "Traceback" not in out.stderr
    assert len([line for line in out.stdout.splitlines() if DEVICE_LINE.match(line)]) == 1, out.stdout
    assert out.stdout.splitlines()[0] == "no GPU found, training on CPU" or "GPU" in out.stdout.splitlines()[0]


def test_a_command_shows_each_warning_once(tmp_path, capsys):
    """The same warning, however often a command's folds raise it, is shown once: tfft's own (the
    unreadable files, which names a file the command really has) and TensorFlow's retracing."""
    root = write_image_folder(tmp_path / "photos", {"a": 4, "b": 4})
    (root / "a" / "broken.png").write_bytes(b"not an image")
    tensorflow = logging.getLogger("tensorflow")
    seen: list[str] = []
    collect = logging.Handler()
    collect.emit = lambda record: seen.append(record.getMessage())
    tensorflow.addHandler(collect)
    try:
        with command_runtime(verbose=True):
            for fold in range(3):
                load_splits(DataConfig(source=str(root), val_split=0.0), seed=0)
                tensorflow.warning("%d out of the last %d calls to <function f at 0x7f%d> triggered tf.function "
                                   "retracing", 5 + fold, 5 + fold, fold)
    finally:
        tensorflow.removeHandler(collect)
    err = capsys.readouterr().err
    assert err.count("skipped 1 unreadable file:") == 1, err
    assert "broken.png" in err and "data_report.json" not in err  # `data issues` writes no data_report.json
    assert len(seen) == 1 and "retracing" in seen[0]


def test_verbose_shows_the_details_and_everything_is_restored(capsys):
    tfft_logger, tensorflow = logging.getLogger("tfft"), logging.getLogger("tensorflow")
    before = (tfft_logger.level, tfft_logger.propagate, list(tfft_logger.handlers), tensorflow.level,
              list(tensorflow.filters), os.environ.get("TF_CPP_MIN_LOG_LEVEL"), list(sys.meta_path))
    detail = logging.getLogger("tfft.training.feature_cache")
    with command_runtime():
        detail.info("feature cache: caching the pooled backbone features")
        assert tensorflow.level == logging.ERROR  # quiet unless --verbose or --debug
    assert "caching" not in capsys.readouterr().err
    with command_runtime(verbose=True):
        detail.info("feature cache: caching the pooled backbone features")
        assert not any(isinstance(f, QuietTensorFlowImport) for f in sys.meta_path)  # TensorFlow is imported
    assert "feature cache: caching the pooled backbone features" in capsys.readouterr().err
    assert (tfft_logger.level, tfft_logger.propagate, list(tfft_logger.handlers), tensorflow.level,
            list(tensorflow.filters), os.environ.get("TF_CPP_MIN_LOG_LEVEL"), list(sys.meta_path)) == before


def test_device_line_once_from_train(tmp_path, cli_runner):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_config()))
    result = cli_runner("train", path, "--run-dir", tmp_path / "run")
    assert result.exit_code == 0, result.output
    assert len([line for line in result.output.splitlines() if DEVICE_LINE.match(line)]) == 1
