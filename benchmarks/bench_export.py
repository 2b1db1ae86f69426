"""Size, latency and parity of every export format for one run directory.

Usage: python benchmarks/bench_export.py RUN_DIR [--out DIR] [--build-fixture PETS_MINI]
(--build-fixture first writes the tests' fixture run into RUN_DIR: a tiny conv net on pets-mini.)
Prints a Markdown table (one row per format/quantization) for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--out", default=None, help="where exports go (default: a temporary folder)")
    parser.add_argument("--build-fixture", metavar="PETS_MINI", default=None,
                        help="first build the tests' fixture run dir (tiny CNN, 64x64) in RUN_DIR")
    args = parser.parse_args()
    if args.build_fixture:
        import importlib.util
        from pathlib import Path

        here = Path(__file__).resolve().parents[1] / "tests" / "evaluate" / "conftest.py"
        spec = importlib.util.spec_from_file_location("tfft_evaluate_fixture", here)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.build_run_dir(Path(args.run_dir), Path(args.build_fixture))

    from tfft.evaluation.export import export

    out = args.out or tempfile.mkdtemp(prefix="bench_export_")
    keras_size = os.path.getsize(os.path.join(args.run_dir, "model.keras"))
    rows = []
    for fmt, quantize, name in (("savedmodel", "none", "savedmodel"), ("tflite", "none", "m.tflite"),
                                ("tflite", "dynamic", "m_dynamic.tflite"),
                                ("tflite", "float16", "m_float16.tflite"),
                                ("tflite", "int8", "m_int8.tflite")):
        r = export(args.run_dir, format=fmt, quantize=quantize, out=os.path.join(out, name))
        rows.append(f"| {fmt} | {quantize} | {r.size_bytes / 1024:.1f} | {r.latency_ms:.3f} | "
                    f"{r.parity_top1:.2f} | {r.parity_max_abs_diff:.3g} | {r.parity_images} |")
    print(f"model.keras: {keras_size / 1024:.1f} KiB; CPU: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores")
    print("| format | quantize | size (KiB) | latency, 1 image (ms, median of 20) | top-1 agreement (%) "
          "| max abs diff | images |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
