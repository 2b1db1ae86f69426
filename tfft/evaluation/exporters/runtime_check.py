"""Run one export in its own runtime, in a fresh Python that imports numpy and the runtime only.

Not imported by tfft: `base.run_in_subprocess` runs this file's text with
`python -c TEXT RUNTIME MODEL_PATH FOLDER THREADS RUNS`. It reads `FOLDER/images.npy` (raw 0-255
RGB float32 NHWC), writes `FOLDER/probabilities.npy` (batches of 32) and `FOLDER/report.json`:
the median latency of one image (batch 1, after two warm-up runs), the runtime and its version,
the threads, and whether TensorFlow was loaded in this process (it is not, unless `.tflite` runs
in TensorFlow's interpreter because ai-edge-litert is not installed).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def onnx_runner(path: str, threads: int):
    """ONNX Runtime on the CPU, all graph optimisations, `threads` intra-op threads, no spinning."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # ALL: the blocked NCHWc convolutions, 4x faster than BASIC/EXTENDED on Lite0; no spinning:
    # idle threads that spin cost more than they save on a shared CPU (benchmarks/RESULTS.md).
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return (lambda x: session.run(None, {name: x})[0]), f"onnxruntime {ort.__version__}"


def openvino_runner(path: str, threads: int):
    """OpenVINO's CPU plugin, latency hint, `threads` inference threads."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(Path(path) / "model.xml"))
    compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()

    def run(x):
        return np.array(request.infer({0: x})[compiled.output(0)])

    return run, f"openvino {ov.get_version().split('-')[0]}"


def tflite_runner(path: str, threads: int):
    """The LiteRT interpreter (ai-edge-litert), or TensorFlow's when it is not installed."""
    try:
        from ai_edge_litert import __version__ as version
        from ai_edge_litert.interpreter import Interpreter
        name = f"ai-edge-litert {version}"
    except ImportError:
        import tensorflow as tf
        Interpreter, name = tf.lite.Interpreter, f"tf.lite {tf.__version__}"
    interpreter = Interpreter(model_path=path, num_threads=threads)
    index = interpreter.get_input_details()[0]["index"]
    state = {"batch": None}

    def run(x):
        if state["batch"] != len(x):
            interpreter.resize_tensor_input(index, list(x.shape), strict=False)
            interpreter.allocate_tensors()
            state["batch"] = len(x)
        interpreter.set_tensor(index, x)
        interpreter.invoke()
        return np.array(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))

    return run, name


def median_latency_ms(run, single, runs: int) -> float:
    """The median wall time (ms) of `run(single)` over `runs` calls, after two warm-up calls
    (allocation, kernel selection). tfft's in-process SavedModel check uses it too."""
    run(single)
    run(single)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run(single)
        times.append((time.perf_counter() - start) * 1000.0)
    return float(statistics.median(times))


RUNNERS = {"onnx": onnx_runner, "openvino": openvino_runner, "tflite": tflite_runner}


def main(runtime: str, path: str, folder: str, threads: int, runs: int) -> None:
    images = np.load(Path(folder) / "images.npy").astype(np.float32)
    run, name = RUNNERS[runtime](path, threads)
    probabilities = np.concatenate([np.asarray(run(images[i:i + 32]), np.float32) for i in range(0, len(images), 32)])
    np.save(Path(folder) / "probabilities.npy", probabilities)
    report = {"latency_ms": median_latency_ms(run, images[:1], runs), "runtime": name, "threads": threads,
              "tensorflow_loaded": "tensorflow" in sys.modules}
    (Path(folder) / "report.json").write_text(json.dumps(report), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
