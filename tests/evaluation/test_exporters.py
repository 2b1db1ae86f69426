"""Every export format of a tiny run, each checked in its own runtime (no TensorFlow in the
subprocess that runs ONNX Runtime, OpenVINO and LiteRT), through `tfft export --format all`."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest

from tests.conftest import user_files
from tfft.evaluation.exporters import EXPORTERS

HAS_LITERT = importlib.util.find_spec("ai_edge_litert") is not None


def _installed(format: str, quantize: str = "none") -> bool:
    return EXPORTERS.get(format)().installed(quantize)


def test_the_cli_offers_every_registered_format_and_all(cli_runner):
    result = cli_runner("export", "--help")
    assert result.exit_code == 0
    for name in EXPORTERS.names() + ["all"]:
        assert name in result.output


def test_format_all_writes_every_installed_format_with_its_contract(deployed):
    folder, output = deployed
    document = json.loads((folder / "export.json").read_text())
    files = document["files"]
    expected = {EXPORTERS.get(name)().default_name(q) for name, entry in EXPORTERS.items()
                for q in entry.quantizations if entry().installed(q)}
    assert set(files) == expected and {"model.onnx", "model.tflite", "savedmodel"} <= expected
    for name in expected:
        assert (folder / name).exists(), name
    assert document["input"] == {"name": "image", "dtype": "float32", "layout": "NHWC", "shape": [None, 64, 64, 3],
                                 "range": [0, 255], "channels": "RGB",
                                 "resize": document["input"]["resize"]}
    assert document["savedmodel_input"]["name"] == "image_bytes" and document["labels_file"] == "labels.txt"
    assert (folder / "labels.txt").read_text().split() == ["cat", "dog"]
    assert "raw RGB values 0-255" in (folder / "README.md").read_text()
    # one table: a header and one row per file, then where it went
    lines = output.strip().splitlines()
    assert lines[0].split()[:6] == ["format", "quantize", "size", "MB", "gzip", "MB"]
    rows = [line for line in lines[2:] if line.split()[0] in EXPORTERS]
    assert len(rows) == len(expected) and lines[-1] == f"wrote {folder}"
    if not _installed("openvino", "int8"):
        assert "skipped openvino int8: needs nncf (pip install 'tfft[openvino]')" in output


def test_each_export_ran_in_its_own_runtime_without_tensorflow(deployed):
    files = json.loads((deployed[0] / "export.json").read_text())["files"]
    runtimes = {name: entry["runtime"].split()[0] for name, entry in files.items()}
    assert runtimes["savedmodel"] == "tensorflow" and files["savedmodel"]["tensorflow_loaded"]
    for name in ("model.onnx", "model_dynamic.onnx", "model_int8.onnx"):
        assert runtimes[name] == "onnxruntime" and not files[name]["tensorflow_loaded"], name
    if _installed("openvino"):
        assert runtimes["openvino"] == "openvino" and not files["openvino"]["tensorflow_loaded"]
    tflite = [name for name in files if name.endswith(".tflite")]
    assert len(tflite) == 4
    for name in tflite:
        assert runtimes[name] == ("ai-edge-litert" if HAS_LITERT else "tf.lite")
        assert files[name]["tensorflow_loaded"] is not HAS_LITERT
    for entry in files.values():
        assert entry["threads"] == (os.cpu_count() or 1) and entry["latency_ms"] > 0
        assert 0 < entry["gzip_bytes"] <= entry["size_bytes"] * 1.01 and entry["parity_images"] == 200


def test_float_exports_match_model_keras_and_quantized_ones_stay_close(deployed):
    files = json.loads((deployed[0] / "export.json").read_text())["files"]
    for name, entry in files.items():
        line = f"{name}: {entry['parity_top1']} {entry['parity_max_abs_diff']}"
        if entry["quantize"] in ("none",):
            assert entry["parity_top1"] == 100.0 and entry["parity_max_abs_diff"] < 1e-4, line
            assert entry["accuracy"] == entry["reference_accuracy"], line
        else:
            assert entry["parity_top1"] >= 90.0 and entry["parity_max_abs_diff"] < 0.2, line
            assert abs(entry["accuracy"] - entry["reference_accuracy"]) <= 10.0, line


def test_format_all_refuses_a_folder_of_user_files(cli_runner, run_dir, user_folder):
    result = cli_runner("export", run_dir, "--format", "all", "--out", user_folder)
    assert result.exit_code == 2 and "--overwrite" in result.output and "Traceback" not in result.output
    assert user_files(user_folder) == ["notes.txt", "photos/a.jpg"]


def test_a_quantization_a_format_lacks_is_named_with_the_ones_it_has(run_dir):
    from tfft.errors import UserError
    from tfft.evaluation.export import export

    with pytest.raises(UserError, match="--format onnx has quantizations none, dynamic, int8, got 'float16'"):
        export(run_dir, format="onnx", quantize="float16")


def test_an_extra_that_is_missing_is_named(run_dir):
    from tfft.errors import UserError
    from tfft.evaluation.export import export

    if _installed("openvino", "int8"):
        pytest.skip("nncf is installed here")
    with pytest.raises(UserError, match=r"--format openvino --quantize int8: needs nncf.*pip install 'tfft\[openvino\]'"):
        export(run_dir, format="openvino", quantize="int8")


def test_onnx_quantized_files_record_the_chosen_options(deployed):
    """The int8 files were made with the options chosen in benchmarks/RESULTS.md (pre-processed,
    static QDQ per channel), and say so in their metadata."""
    onnx = pytest.importorskip("onnx")
    from tfft.evaluation.exporters.onnx import QUANTIZE_OPTIONS

    for quantize in ("dynamic", "int8"):
        model = onnx.load(str(deployed[0] / f"model_{quantize}.onnx"))
        props = {entry.key: entry.value for entry in model.metadata_props}
        assert json.loads(props["tfft.quantization"]) == {quantize: QUANTIZE_OPTIONS[quantize]}
        ops = {node.op_type for node in model.graph.node}
        assert ("QuantizeLinear" in ops) if quantize == "int8" else ("DynamicQuantizeLinear" in ops), ops
    assert not list(deployed[0].glob(".*.tmp"))
