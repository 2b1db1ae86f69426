"""The pre-TensorFlow checks: a config naming a missing folder or too small an image is refused in
seconds, with no TensorFlow imported and no run directory made."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import yaml

from tests.conftest import REPO, tiny_config, write_image_folder
from tfft.config import load_config
from tfft.errors import UserError
from tfft.runs import directory as rundir
from tfft.training.preflight import check_config


def test_missing_folder_fails_fast_with_no_run_directory(tmp_path):
    cfg = tiny_config(data={"source": str(tmp_path / "no-such-photos")})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "tfft.cli.main", "train", "c.yaml"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("error: data.source: folder not found")
    assert elapsed < 10, f"refused after {elapsed:.1f} s"  # it took 40-53 s, after TensorFlow and the backbone
    assert not (tmp_path / "runs").exists()


def test_a_refused_check_imports_no_tensorflow(tmp_path):
    probe = ("import sys\n"
             "from tfft.config import load_config\n"
             "from tfft.errors import UserError\n"
             "from tfft.training.preflight import check_config\n"
             f"for raw in ({{'data': {{'source': {str(tmp_path / 'none')!r}}}}},\n"
             "            {'data': {'source': 'builtin:shapes', 'image_size': [16, 16]}, 'model': {'backbone': 'resnet50'}},\n"
             f"            {{'model': {{'backbone': 'keras:' + {str(tmp_path / 'm.keras')!r}}}}},\n"
             f"            {{'model': {{'weights': {str(tmp_path / 'w.weights.h5')!r}}}}},\n"
             f"            {{'distill': {{'teacher': {str(tmp_path / 'teacher')!r}}}}}):\n"
             "    try:\n"
             "        check_config(load_config(raw))\n"
             "    except UserError as exc:\n"
             "        print(exc.where)\n"
             "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.stdout.split() == ["data.source", "data.image_size", "model.backbone", "model.weights",
                                  "distill.teacher", "False", "False"]


@pytest.mark.parametrize("raw, where, needle", [
    ({"data": {"source": "csv:/nonexistent/m.csv"}}, "data.source", "CSV manifest not found"),
    ({"data": {"source": "s3x:bucket/photos"}}, "data.source", "unknown source scheme"),
    ({"data": {"image_size": [64, 64]}, "model": {"backbone": "inception_v3"}}, "data.image_size",
     "needs at least 75x75"),
])
def test_check_config_names_the_key(raw, where, needle):
    with pytest.raises(UserError) as info:
        check_config(load_config(raw))
    assert info.value.where == where and needle in str(info.value)


def test_a_later_refusal_removes_only_what_the_command_made(tmp_path):
    """A folder of one class passes the path check and is refused while the data is read: the run
    directory this command made goes; a folder that held something before stays as it was."""
    import tfft

    root = write_image_folder(tmp_path / "photos", {"only": 4})
    cfg = tiny_config(data={"source": str(root)}, training={"runs_dir": str(tmp_path / "runs")})
    with pytest.raises(UserError, match="class"):
        tfft.train(cfg)
    assert not (tmp_path / "runs").exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    assert rundir.folders_to_make(kept) is None
    assert not rundir.discard_unstarted(kept, rundir.folders_to_make(kept))
    assert (kept / "notes.txt").read_text() == "mine"
