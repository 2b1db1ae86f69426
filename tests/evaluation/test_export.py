"""SavedModel (bytes in, fresh process) and TFLite exports, with parity against model.keras."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.conftest import user_files
from tfft.errors import UserError
from tfft.evaluation.export import export
from tfft.data.files import read_image
from tfft.runs.directory import load_model, open_run

SERVE = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    fn = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
    files = json.loads(sys.stdin.read())
    data = [open(f, "rb").read() for f in files]
    out = fn(image_bytes=tf.constant(data))
    print(json.dumps({"probabilities": out["probabilities"].numpy().tolist(),
                      "dtype": out["probabilities"].dtype.name,
                      "label": [s.decode() for s in out["label"].numpy().tolist()],
                      "inputs": sorted(fn.structured_input_signature[1])}))
""")


@pytest.mark.slow
def test_savedmodel_serves_jpeg_bytes_in_a_fresh_process(run_dir, pets_mini, tmp_path):
    result = export(run_dir, format="savedmodel", out=tmp_path / "sm", parity_images=40)
    assert result.parity_top1 == 100.0 and result.parity_max_abs_diff < 1e-4
    assert result.size_bytes > 10_000 and result.latency_ms > 0
    files = [str(p) for p in sorted((pets_mini / "val" / "cat").glob("*.jpg"))[:6]]
    files += [str(p) for p in sorted((pets_mini / "val" / "dog").glob("*.jpg"))[:6]]
    proc = subprocess.run([sys.executable, "-c", SERVE, str(tmp_path / "sm")], input=json.dumps(files),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    served = json.loads(proc.stdout.strip().splitlines()[-1])
    assert served["inputs"] == ["image_bytes"] and served["dtype"] == "float32"
    run = open_run(run_dir)
    model = load_model(run)
    expected = model.predict(np.stack([read_image(f, run.image_size) for f in files]), verbose=0)
    probs = np.asarray(served["probabilities"])
    assert probs.shape == (12, 2)
    assert np.abs(probs - expected).max() < 1e-4
    assert served["label"] == [run.class_names[i] for i in expected.argmax(axis=1)]


@pytest.mark.parametrize("quantize", ["none", "dynamic", "float16",
                                      pytest.param("int8", marks=pytest.mark.slow)])
def test_tflite_parity(run_dir, tmp_path, quantize):
    out = tmp_path / f"m_{quantize}.tflite"
    result = export(run_dir, format="tflite", quantize=quantize, out=out)
    assert out.is_file() and result.size_bytes == out.stat().st_size
    assert result.parity_images == 200
    if quantize == "int8":
        assert result.parity_top1 >= 90.0
        assert result.parity_max_abs_diff < 0.2
    else:
        assert result.parity_top1 >= 99.0
        assert result.parity_max_abs_diff < (1e-5 if quantize == "none" else 5e-3)
    line = result.parity_line()
    assert line.startswith("parity: top1 agreement ") and "%, max abs diff " in line

    # The .tflite takes the raw 0-255 RGB float batch, like model.keras.
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(out))
    detail = interpreter.get_input_details()[0]
    assert detail["dtype"] == np.float32 and list(detail["shape"][1:]) == [64, 64, 3]
    assert interpreter.get_output_details()[0]["dtype"] == np.float32


def test_parity_line_counts_the_clear_images(run_dir, tmp_path):
    """Agreement over the images where model.keras is not on the fence, and how many those were."""
    import re

    from tfft.evaluation.export import CLEAR_MARGIN, _keras_probs, _parity_images

    result = export(run_dir, format="tflite", out=tmp_path / "m.tflite", parity_images=60)
    probs = np.sort(_keras_probs(load_model(open_run(run_dir)), _parity_images(open_run(run_dir), 60, tmp_path)[1]),
                    axis=1)
    clear = int(((probs[:, -1] - probs[:, -2]) >= CLEAR_MARGIN).sum())
    assert result.parity_images == 60 and result.parity_clear_images == clear
    line = result.parity_line()
    match = re.fullmatch(r"parity: top1 agreement [0-9.]+%, max abs diff \S+; clear images \(top-1 margin "
                         r">= 0\.1\) (\d+)/60: (top1 agreement [0-9.]+%|none)", line)
    assert match and int(match.group(1)) == clear, line
    assert (result.parity_clear_top1 is None) == (clear == 0) == (match.group(2) == "none")


def test_bad_arguments_are_user_errors(run_dir, tmp_path):
    with pytest.raises(UserError, match="--format savedmodel has quantizations none, got 'int8'"):
        export(run_dir, format="savedmodel", quantize="int8")
    with pytest.raises(UserError, match="expected one of"):
        export(run_dir, format="pb")
    with pytest.raises(UserError, match="run directory not found"):
        export(tmp_path / "absent", format="tflite")
    try:
        import tf2onnx  # noqa: F401
    except ImportError:
        with pytest.raises(UserError, match=r"pip install 'tfft\[onnx\]'"):
            export(run_dir, format="onnx")


def test_cli_export_ends_with_parity_line(cli_runner, run_dir, tmp_path):
    result = cli_runner("export", run_dir, "--format", "tflite", "--out", tmp_path / "m.tflite")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("parity: top1 agreement 100.00%, max abs diff ")
    assert any(l.startswith("wrote ") for l in lines) and any(l.startswith("size: ") for l in lines)


def test_cli_exit_codes(cli_runner, run_dir, tmp_path):
    missing = tmp_path / "no-run"
    for args in (("evaluate", missing), ("predict", missing, "x.jpg"),
                 ("export", missing, "--format", "savedmodel")):
        result = cli_runner(*args)
        assert result.exit_code == 2, (args, result.output)
        assert "run directory not found" in result.output
    try:
        import tf2onnx  # noqa: F401
    except ImportError:  # (installed: tests/evaluation/test_exporters.py exports to onnx)
        result = cli_runner("export", run_dir, "--format", "onnx")
        assert result.exit_code == 2 and "pip install 'tfft[onnx]'" in result.output
    result = cli_runner("evaluate", run_dir, "--split", "val", "--top-k", "1")
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "macro avg" in result.output



def test_export_refuses_a_folder_of_user_files_and_the_run_itself(cli_runner, run_copy, user_folder):
    mine = user_folder
    before = user_files(run_copy)
    for fmt, out in (("savedmodel", mine), ("savedmodel", run_copy), ("savedmodel", run_copy.parent),
                     ("tflite", run_copy / "labels.txt")):
        result = cli_runner("export", run_copy, "--format", fmt, "--out", out)
        assert result.exit_code == 2, (out, result.output)
        assert "--overwrite" in result.output and "Traceback" not in result.output
    assert user_files(mine) == ["notes.txt", "photos/a.jpg"]
    assert user_files(run_copy) == before


def test_export_overwrite_writes_beside_theuser_files(cli_runner, run_copy, user_folder):
    mine = user_folder
    result = cli_runner("export", run_copy, "--format", "savedmodel", "--out", mine, "--overwrite")
    assert result.exit_code == 0, result.output
    assert (mine / "saved_model.pb").is_file() and (mine / "assets" / "labels.txt").is_file()
    assert (mine / "notes.txt").read_text() == "mine" and (mine / "photos" / "a.jpg").is_file()
    for _ in range(2):  # tfft's own RUN_DIR/export/savedmodel is replaced freely
        result = cli_runner("export", run_copy, "--format", "savedmodel")
        assert result.exit_code == 0, result.output
    # beside it, the input contract (export.json, README.md) and labels.txt
    assert sorted(p.name for p in (run_copy / "export").iterdir()) == ["README.md", "export.json", "labels.txt",
                                                                       "savedmodel"]


def test_export_tflite_into_an_existing_folder_and_again_to_the_default(cli_runner, run_copy, user_folder):
    mine = user_folder
    result = cli_runner("export", run_copy, "--format", "tflite", "--out", mine)
    assert result.exit_code == 0, result.output
    assert f"wrote {mine / 'model.tflite'}" in result.output
    assert user_files(mine) == ["model.tflite", "notes.txt", "photos/a.jpg"]
    again = cli_runner("export", run_copy, "--format", "tflite", "--out", mine)  # now it exists: the user's?
    assert again.exit_code == 2 and "already exists" in again.output
    for _ in range(2):  # tfft's own RUN_DIR/export/ is replaced freely
        result = cli_runner("export", run_copy, "--format", "tflite")
        assert result.exit_code == 0, result.output
    assert (run_copy / "export" / "model.tflite").is_file()


@pytest.mark.slow  # a tiny training, an int8 and a SavedModel export: about a minute here
def test_export_of_a_builtin_run_leaves_no_temporary_folder(tmp_path, monkeypatch):
    """builtin:/tfds: runs have no image files: parity and calibration images go to a temporary folder, removed after."""
    import tempfile

    import tfft
    from tests.conftest import tiny_config

    run = tfft.train(tiny_config(name="builtin-export"), run_dir=str(tmp_path / "run")).run_dir
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    result = export(run, format="tflite", quantize="int8", parity_images=16)
    assert result.parity_images == 16 and (run / "export" / "model_int8.tflite").is_file()
    result = export(run, format="savedmodel", parity_images=16)
    assert result.parity_top1 == 100.0
    # (TensorFlow's autograph leaves its own generated .py files there; tfft leaves no folder, no image)
    assert [p.name for p in scratch.iterdir() if p.is_dir()] == [] and list(scratch.rglob("*.png")) == []
