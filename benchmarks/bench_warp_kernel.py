"""The CPU warp alone: ms per 224x224 RGB image, per fill mode, against the XLA warp or an older kernel.

Run from the repo root:

    .venv/bin/python benchmarks/bench_warp_kernel.py [--against GIT_REF] [--repeats 11]

Rows: `tfft.augment.cpu_kernels.warp` (what the input pipeline runs per image) on a float32
image (the output of the pipeline's resize) with a rotation+shear+zoom+shift matrix, and the
batched XLA warp (`geometry.warp`) on a batch of 32 of the same, per image. With `--against REF`,
also the `cpu_kernels.py` of that git commit, compiled beside the current one (not cached).
Rows are interleaved within a round; the table gives medians, and for `--against` the median of
the per-round ratios (paired: a drift of this shared machine's speed cancels). A second table
times the resize the pipeline fuses with the warp (`cpu_kernels.resize`, bitwise
`decode.resize`) against `decode.resize` itself, TF's ops.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODES = {"nearest": 0, "constant": 1, "reflect": 2, "wrap": 3}


def _load_kernels_at(ref: str):
    """The `warp` of `tfft/augment/cpu_kernels.py` (`_cpu_kernels.py` before issue 28) at git commit `ref`."""
    for name in ("cpu_kernels.py", "_cpu_kernels.py"):
        shown = subprocess.run(["git", "show", f"{ref}:tfft/augment/{name}"], cwd=ROOT, capture_output=True, text=True)
        if shown.returncode == 0:
            break
    shown.check_returncode()
    source = shown.stdout.replace("cache=True", "cache=False")
    path = Path(tempfile.mkdtemp()) / "old_cpu_kernels.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_cpu_kernels", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.warp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", help="a git ref whose cpu_kernels.warp to time beside the current one")
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--calls", type=int, default=100, help="images warped per timing")
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf

    from tfft.augment import cpu_kernels, geometry

    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (224, 224, 3)).astype(np.float32)
    theta, shear = np.deg2rad(25.0), np.deg2rad(8.0)
    matrix = np.array([[np.cos(theta), -np.sin(theta + shear) * 1.1, 20.0],
                       [np.sin(theta), np.cos(theta + shear) * 0.9, -15.0], [0.0, 0.0, 1.0]], np.float32)
    out = np.empty_like(image)
    kernels = {"current": cpu_kernels.warp}
    if args.against:
        kernels[args.against] = _load_kernels_at(args.against)
    batch, matrices = tf.constant(np.repeat(image[None], 32, 0)), tf.constant(np.repeat(matrix[None], 32, 0))

    print(f"224x224x3 float32, ms per image, median of {args.repeats} rounds of {args.calls} images")
    header = "| fill mode | " + " | ".join(kernels) + " | XLA warp (batch 32, both cores, wall) |"
    if args.against:
        header += f" current / {args.against} |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for mode, code in MODES.items():
        rows = {name: (lambda k=kernel: k(image, matrix, code, np.float32(0), out)) for name, kernel in kernels.items()}
        rows["xla"] = lambda m=mode: geometry.warp(batch, matrices, m).numpy()
        calls = {name: args.calls for name in kernels} | {"xla": max(1, args.calls // 32)}
        for run in rows.values():
            run()  # compile
        times: dict = {name: [] for name in rows}
        for _ in range(args.repeats):
            for name, run in rows.items():
                start = time.perf_counter()
                for _ in range(calls[name]):
                    run()
                per_image = 32 if name == "xla" else 1
                times[name].append((time.perf_counter() - start) / (calls[name] * per_image) * 1e3)
        line = f"| {mode} | " + " | ".join(f"{statistics.median(times[n]):.3f}" for n in rows) + " |"
        if args.against:
            ratio = statistics.median(a / b for a, b in zip(times["current"], times[args.against]))
            line += f" {ratio:.2f} |"
        print(line)
    _resize_table(args.repeats, args.calls)


def _resize_table(repeats: int, calls: int) -> None:
    """The compiled resize the pipeline fuses with the warp against `decode.resize` (TF's ops).

    CPU time per image: TF's resizes run 32 to a `tf.function` call (so its call overhead, about
    0.3 ms, is spread over 32 images), the compiled one an image a call.
    """
    import numpy as np
    import tensorflow as tf

    from tfft.augment import cpu_kernels
    from tfft.data import decode

    print(f"\nresize of a uint8 photo to 224x224 float32, ms of CPU per image, median of {repeats} rounds")
    print("| source | kind | compiled (`cpu_kernels.resize`) | `decode.resize` (TF ops, 32 per call) | ratio |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for (h, w), kind in (((180, 180), "bilinear (upscale)"), ((375, 500), "antialiased (downscale)")):
        images = rng.integers(0, 256, (32, h, w, 3), dtype=np.uint8)
        out, tensors = np.empty((224, 224, 3), np.float32), tf.constant(images)
        tf_resize = tf.function(lambda x: [decode.resize(x[i], (224, 224)) for i in range(32)])
        rows = {"compiled": (lambda: cpu_kernels.resize(images[0], out), calls, 1),
                "tf": (lambda: tf_resize(tensors), max(1, calls // 32), 32)}
        for run, _, _ in rows.values():
            run()
        times: dict = {name: [] for name in rows}
        for _ in range(repeats):
            for name, (run, n, per_call) in rows.items():
                start = time.process_time()
                for _ in range(n):
                    run()
                times[name].append((time.process_time() - start) / (n * per_call) * 1e3)
        ratio = statistics.median(a / b for a, b in zip(times["compiled"], times["tf"]))
        print(f"| {h}x{w} | {kind} | {statistics.median(times['compiled']):.3f} | "
              f"{statistics.median(times['tf']):.3f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
