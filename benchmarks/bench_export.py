"""The deployment table of one run directory: every installed format and quantization, each
checked in its own runtime (ONNX Runtime, OpenVINO and LiteRT in a subprocess without TensorFlow).

Usage: python benchmarks/bench_export.py RUN_DIR [--out DIR] [--threads N] [--parity-images N]
       [--build-fixture PETS_MINI]
(--build-fixture first writes the tests' fixture run into RUN_DIR: a tiny conv net on pets-mini.)
Prints a Markdown table (one row per format/quantization) for benchmarks/RESULTS.md: size, gzip
size, latency of one image (median of 20, batch 1, the threads stated), top-1 agreement with
model.keras over all parity images and over the clear ones, max abs diff, and the accuracy of the
export and of model.keras on the parity images (the validation images, up to --parity-images).
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
    parser.add_argument("--threads", type=int, default=None, help="runtime threads (default: every core)")
    parser.add_argument("--parity-images", type=int, default=240)
    parser.add_argument("--build-fixture", metavar="PETS_MINI", default=None,
                        help="first build the tests' fixture run dir (tiny CNN, 64x64) in RUN_DIR")
    args = parser.parse_args()
    if args.build_fixture:
        import importlib.util
        from pathlib import Path

        here = Path(__file__).resolve().parents[1] / "tests" / "evaluation" / "conftest.py"
        spec = importlib.util.spec_from_file_location("tfft_evaluation_fixture", here)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        args.run_dir = str(module.build_run_dir(Path(args.run_dir), Path(args.build_fixture)))

    from tfft.evaluation.export import export_all

    out = args.out or os.path.join(tempfile.mkdtemp(prefix="bench_export_"), "deploy")
    summary = export_all(args.run_dir, out=out, parity_images=args.parity_images, threads=args.threads,
                         overwrite=True)
    keras_size = os.path.getsize(os.path.join(args.run_dir, "model.keras"))
    first = summary.results[0]
    print(f"model.keras: {keras_size / 1e6:.2f} MB; val accuracy on the {first.parity_images} parity images: "
          f"{first.reference_accuracy if first.reference_accuracy is not None else float('nan'):.2f}%; "
          f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print("| format | quantize | size (MB) | gzip (MB) | latency, 1 image (ms, median of 20) | threads "
          "| top-1 agreement (%) | clear images: agreement (%) | max abs diff | val accuracy (%) | runtime |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in summary.results:
        clear = "-" if r.parity_clear_top1 is None else f"{r.parity_clear_top1:.2f} of {r.parity_clear_images}"
        accuracy = "-" if r.accuracy is None else f"{r.accuracy:.2f}"
        print(f"| {r.format} | {r.quantize} | {r.size_bytes / 1e6:.2f} | {r.gzip_bytes / 1e6:.2f} | "
              f"{r.latency_ms:.2f} | {r.threads} | {r.parity_top1:.2f} | {clear} | {r.parity_max_abs_diff:.2g} | "
              f"{accuracy} | {r.runtime} |")
    for line in summary.skipped:
        print(f"skipped: {line}")


if __name__ == "__main__":
    main()
