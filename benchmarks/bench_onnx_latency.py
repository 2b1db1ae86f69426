"""Why ONNX Runtime was slow on a fine-tuned EfficientNet-Lite0: latency of one image (batch 1,
median) across converters, opsets, graph optimisation levels, thread counts and thread spinning,
beside LiteRT and OpenVINO on the same image, every runtime in a fresh process without TensorFlow,
the configurations interleaved (round-robin) so that the machine's load hits them alike.

Usage: python benchmarks/bench_onnx_latency.py RUN_DIR [--out DIR] [--rounds 1] [--runs 20]
(files already in --out are reused, e.g. `tfft export --format all`'s model.tflite and openvino/)
Prints a Markdown table for benchmarks/RESULTS.md and the share of ONNX Runtime's time per op type.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MEASURE = r'''
import json, statistics, sys, time
import numpy as np
kind, path, threads, option, runs, shape = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), json.loads(sys.argv[6])
x = np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32)
if kind == "onnx":
    import onnxruntime as ort
    o = ort.SessionOptions(); o.intra_op_num_threads = threads; o.inter_op_num_threads = 1
    level, spin = option.split("/")
    o.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    o.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin == "spin" else "0")
    s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"]); name = s.get_inputs()[0].name
    run = lambda: s.run(None, {name: x})
elif kind == "openvino":
    import openvino as ov
    c = ov.Core().compile_model(path, "CPU", {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"})
    r = c.create_infer_request(); run = lambda: r.infer({0: x})
else:
    from ai_edge_litert.interpreter import Interpreter
    i = Interpreter(model_path=path, num_threads=threads); i.allocate_tensors(); idx = i.get_input_details()[0]["index"]
    def run():
        i.set_tensor(idx, x); i.invoke()
for _ in range(3):
    run()
t = []
for _ in range(runs):
    a = time.perf_counter(); run(); t.append((time.perf_counter() - a) * 1000)
print(json.dumps({"ms": statistics.median(t), "tf": "tensorflow" in sys.modules}))
'''

PROFILE = r'''
import collections, json, sys
import numpy as np, onnx, onnxruntime as ort
path, shape = sys.argv[1], json.loads(sys.argv[2])
groups = {n.name: next((a.i for a in n.attribute if a.name == "group"), 1) for n in onnx.load(path).graph.node}
o = ort.SessionOptions(); o.intra_op_num_threads = 1; o.enable_profiling = True
s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
x = np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32)
for _ in range(10):
    s.run(None, {s.get_inputs()[0].name: x})
share = collections.Counter()
for e in json.load(open(s.end_profiling())):
    if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
        node = e["name"][:-len("_kernel_time")]
        op = e["args"]["op_name"]
        share["depthwise Conv" if op.endswith("Conv") and groups.get(node.split("_token")[0], 1) > 1 else op] += e["dur"]
total = sum(share.values())
print(", ".join(f"{k} {100 * v / total:.0f}%" for k, v in share.most_common(5)))
'''


def build(run_dir: str, out: Path) -> tuple[dict[str, str], list[int]]:
    """The ONNX variants (tf2onnx opset 13 and 17, Keras' model.export), the float .tflite and the OpenVINO IR."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import tf2onnx

    from tfft.evaluation.exporters.base import float32_function
    from tfft.runs.directory import load_model, open_run

    run = open_run(run_dir)
    model = load_model(run)
    fn, spec = float32_function(model, run.image_size)
    files = {f"tf2onnx opset {opset}": str(out / f"tf2onnx_{opset}.onnx") for opset in (13, 17)}
    files.update({"keras model.export(onnx)": str(out / "keras.onnx"), "litert": str(out / "model.tflite"),
                  "openvino": str(out / "openvino" / "model.xml")})
    # What is in OUT already is reused (a second run measures again without converting again).
    for opset in (13, 17):
        if not Path(files[f"tf2onnx opset {opset}"]).is_file():
            tf2onnx.convert.from_function(fn, input_signature=[spec], opset=opset,
                                          output_path=files[f"tf2onnx opset {opset}"])
    if not Path(files["keras model.export(onnx)"]).is_file():
        with contextlib.redirect_stdout(io.StringIO()):
            model.export(files["keras model.export(onnx)"], format="onnx")
    from tfft.evaluation.export import export

    if not Path(files["litert"]).is_file():
        export(run_dir, format="tflite", out=files["litert"], overwrite=True, parity_images=8)
    if not Path(files["openvino"]).is_file():
        export(run_dir, format="openvino", out=str(out / "openvino"), overwrite=True, parity_images=8)
    return files, [1, *run.image_size, 3]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--out", default=None)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="bench_onnx_"))
    out.mkdir(parents=True, exist_ok=True)
    files, shape = build(args.run_dir, out)
    configs = []
    for threads in (1, 2):
        for name in ("tf2onnx opset 13", "tf2onnx opset 17", "keras model.export(onnx)"):
            for option in ("ORT_ENABLE_ALL/spin", "ORT_ENABLE_ALL/nospin", "ORT_ENABLE_EXTENDED/nospin",
                           "ORT_ENABLE_BASIC/nospin"):
                if name != "tf2onnx opset 17" and option != "ORT_ENABLE_ALL/nospin":
                    continue
                configs.append(("onnx", name, option, threads))
        configs.append(("litert", "litert", "", threads))
        configs.append(("openvino", "openvino", "LATENCY", threads))
    times: dict[tuple, list[float]] = {c: [] for c in configs}
    for _ in range(args.rounds):
        for config in configs:
            kind, name, option, threads = config
            proc = subprocess.run([sys.executable, "-c", MEASURE, kind, files[name], str(threads), option or "-",
                                   str(args.runs), json.dumps(shape)], capture_output=True, text=True, cwd=out, check=False)
            if proc.returncode:
                raise RuntimeError(proc.stderr[-2000:])
            report = json.loads(proc.stdout.strip().splitlines()[-1])
            assert not report["tf"]
            times[config].append(report["ms"])
    print(f"{os.cpu_count()} cores; median of {args.runs} runs, then the median over {args.rounds} interleaved rounds")
    print("| runtime | model | options | threads | latency ms |")
    print("| --- | --- | --- | --- | --- |")
    for (kind, name, option, threads), values in times.items():
        print(f"| {kind} | {name} | {option} | {threads} | {statistics.median(values):.1f} |")
    for name in ("tf2onnx opset 17", "keras model.export(onnx)"):
        proc = subprocess.run([sys.executable, "-c", PROFILE, files[name], json.dumps(shape)], capture_output=True,
                              text=True, cwd=out, check=False)
        print(f"ONNX Runtime time by op ({name}, 1 thread, ORT_ENABLE_ALL):", proc.stdout.strip() or proc.stderr[-500:])


if __name__ == "__main__":
    main()
