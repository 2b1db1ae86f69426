"""Deployment table on pets-mini: a fine-tuned Lite0 teacher, its int8 TFLite, pruned 50/75/90%
(float and int8), a distilled student (float and int8); then distillation itself: the student with
and without the teacher, same recipe, several seeds.

Run from the repo root (prints markdown tables; every run directory and a results.json go to --work,
and finished runs there are reused, so an interrupted benchmark continues):

    .venv/bin/python benchmarks/bench_compress.py [--data ../shared/datasets/pets-mini] [--work runs/bench-compress]
        [--teacher-size 224] [--student-size 128] [--sparsities 0.5 0.75 0.9] [--prune-epochs 4] [--seeds 3]
        [--extra NAME=RUN_DIR ...]

Every row is measured on its TFLite file (what is deployed): val accuracy over all the source's val
images (decoded as training decodes them), the file's size raw and gzip -9, and latency per image:
batch 1, 2 interpreter threads, the median of --latency-runs invokes after 10 warm-up ones.

Recipes: the teacher is `efficientnet_lite0` (`weights: imagenet`, offline) at --teacher-size,
two_phase (3 head epochs at 1e-3, 2 fine-tuning epochs of the top block at 1e-4), horizontal flips.
Pruning: `tfft.prune(teacher, S, epochs=--prune-epochs)` (every layer trains, BatchNorm too (momentum 0.9), lr
1e-4, cubic ramp over the first 75% of the steps). The student is `efficientnet_lite0` (imagenet) at
--student-size, the same two_phase schedule without augmentation (so both phases train on cached
features: with the teacher, its logits are cached beside them), with `distill: {teacher, T 3, alpha
0.5}` or without; MobileNetV3-Small has no offline ImageNet weights here, and from random weights it
does not learn 800 photos in a few epochs, so the student is a smaller-input Lite0.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_DATA = (REPO.parent.parent if REPO.parent.name == "wt" else REPO.parent) / "shared/datasets/pets-mini"


def _teacher_config(args: argparse.Namespace) -> dict:
    return {
        "name": "teacher", "seed": 0,
        "data": {"source": str(args.data), "image_size": [args.teacher_size] * 2, "batch_size": 32},
        "model": {"backbone": "efficientnet_lite0", "weights": "imagenet", "dropout": 0.2},
        "schedule": {"preset": "two_phase", "head_epochs": 3, "finetune_epochs": 2, "lr": 1e-3},
        "augment": {"horizontal_flip": True},
        "training": {"verbose": "line"},
        "evaluate": {"splits": ["val"]},
    }


def _student_config(args: argparse.Namespace, seed: int, teacher: Path | None) -> dict:
    config = _teacher_config(args)
    config.update(name=f"student-{'kd' if teacher else 'plain'}-{seed}", seed=seed)
    config["data"]["image_size"] = [args.student_size] * 2
    config["augment"] = {"horizontal_flip": False}
    if teacher is not None:
        config["distill"] = {"teacher": str(teacher), "temperature": 3.0, "alpha": 0.5}
    return config


def _train(config: dict, run_dir: Path) -> Path:
    import tfft

    if (run_dir / "metrics.json").is_file():
        return run_dir
    return tfft.train(config, run_dir=str(run_dir), overwrite=True).run_dir


def _gzip(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), compresslevel=9, mtime=0))


def _interpreter(path: Path, threads: int):
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tf.lite.Interpreter(model_path=str(path), num_threads=threads)


def _measure(path: Path, images, labels, latency_runs: int) -> dict:
    import numpy as np

    interpreter = _interpreter(path, 2)
    index = interpreter.get_input_details()[0]["index"]
    output = interpreter.get_output_details()[0]["index"]
    interpreter.resize_tensor_input(index, [1] + list(images[0].shape), strict=False)
    interpreter.allocate_tensors()
    predicted = []
    for image in images:
        interpreter.set_tensor(index, image[None].astype(np.float32))
        interpreter.invoke()
        predicted.append(int(np.argmax(interpreter.get_tensor(output))))
    times = []
    for i in range(10 + latency_runs):
        interpreter.set_tensor(index, images[i % len(images)][None].astype(np.float32))
        start = time.perf_counter()
        interpreter.invoke()
        if i >= 10:
            times.append((time.perf_counter() - start) * 1000.0)
    return {"accuracy": float(np.mean(np.asarray(predicted) == labels)), "bytes": path.stat().st_size,
            "gzip_bytes": _gzip(path), "latency_ms": float(statistics.median(times))}


def _row(name: str, run_dir: Path, quantize: str, args: argparse.Namespace, cache: dict) -> dict:
    import tfft
    from tfft.data.files import read_images
    from tfft.runs.directory import open_run, split_files

    out = run_dir / "export" / (f"model_{quantize}.tflite" if quantize != "none" else "model.tflite")
    parity = None
    if not out.is_file():
        result = tfft.export(str(run_dir), format="tflite", quantize=quantize, out=str(out))
        parity = result.parity_line()
    run = open_run(run_dir)
    key = tuple(run.image_size)
    if key not in cache:
        paths, labels = split_files(run, "val")
        kept, images = read_images(paths, run.image_size, fast_decode=run.fast_decode)
        assert len(kept) == len(paths)
        cache[key] = (images, labels)
    images, labels = cache[key]
    row = {"model": name, "quantize": quantize, "run_dir": str(run_dir), "parity": parity}
    row.update(_measure(out, images, labels, args.latency_runs))
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "bench-compress")
    parser.add_argument("--teacher-size", type=int, default=224)
    parser.add_argument("--student-size", type=int, default=128)
    parser.add_argument("--sparsities", type=float, nargs="+", default=[0.5, 0.75, 0.9])
    parser.add_argument("--prune-epochs", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--latency-runs", type=int, default=200)
    parser.add_argument("--extra", nargs="*", default=[], metavar="NAME=RUN_DIR",
                        help="more finished run directories to measure as rows (float and int8)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    started, load = time.time(), os.getloadavg()

    import tfft

    teacher = _train(_teacher_config(args), args.work / "teacher")
    pruned = {}
    for sparsity in args.sparsities:
        target = args.work / f"pruned-{round(sparsity * 100)}-e{args.prune_epochs}"
        if not (target / "metrics.json").is_file():
            tfft.prune(str(teacher), sparsity, epochs=args.prune_epochs, out=str(target), overwrite=True)
        pruned[sparsity] = target
    students = {}
    for seed in range(args.seeds):
        for with_teacher in (True, False):
            config = _student_config(args, seed, teacher if with_teacher else None)
            students[(seed, with_teacher)] = _train(config, args.work / config["name"])

    cache: dict = {}
    rows = [_row(f"teacher Lite0 {args.teacher_size}px", teacher, "none", args, cache),
            _row(f"teacher Lite0 {args.teacher_size}px", teacher, "int8", args, cache)]
    for sparsity, run_dir in pruned.items():
        for quantize in ("none", "int8"):
            rows.append(_row(f"pruned {sparsity:.0%}", run_dir, quantize, args, cache))
    for quantize in ("none", "int8"):
        rows.append(_row(f"distilled student Lite0 {args.student_size}px (seed 0)", students[(0, True)], quantize,
                         args, cache))

    for item in args.extra:
        name, _, run_dir = item.rpartition("=")
        for quantize in ("none", "int8"):
            rows.append(_row(name, Path(run_dir), quantize, args, cache))

    distill = {}
    for with_teacher in (True, False):
        values = []
        for seed in range(args.seeds):
            metrics = json.loads((students[(seed, with_teacher)] / "metrics.json").read_text())
            values.append(metrics["val"]["accuracy"])
        distill["with teacher" if with_teacher else "without"] = values

    teacher_bytes = rows[0]["bytes"]
    teacher_acc = rows[0]["accuracy"]
    print(f"\npets-mini val ({len(cache[(args.teacher_size,) * 2][1])} images); load average at start "
          f"{load[0]:.2f}, at end {os.getloadavg()[0]:.2f}; {time.time() - started:.0f} s\n")
    print("| model | TFLite | val accuracy | size | gzip | vs float teacher (gzip) | latency (ms, 1 image, 2 threads) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(f"| {row['model']} | {'float32' if row['quantize'] == 'none' else row['quantize']} | "
              f"{row['accuracy']:.4f} ({(row['accuracy'] - teacher_acc) * 100:+.1f}) | {row['bytes'] / 1e6:.2f} MB | "
              f"{row['gzip_bytes'] / 1e6:.2f} MB | {teacher_bytes / row['gzip_bytes']:.1f}x smaller | "
              f"{row['latency_ms']:.2f} |")
    print("\n| student (same recipe) | val accuracy per seed | mean | std |")
    print("| --- | --- | ---: | ---: |")
    for name, values in distill.items():
        print(f"| {name} | {', '.join(f'{v:.4f}' for v in values)} | {statistics.mean(values):.4f} | "
              f"{statistics.stdev(values) if len(values) > 1 else 0.0:.4f} |")
    for sparsity, run_dir in pruned.items():
        report = json.loads((run_dir / "pruning.json").read_text())
        print(f"pruned {sparsity:.0%}: sparsity {report['sparsity']:.4f} over {len(report['layers'])} kernels; "
              f"model.keras gzip {report['gzip_bytes']['dense']:,} -> {report['gzip_bytes']['pruned']:,} bytes")
    (args.work / "results.json").write_text(json.dumps({"rows": rows, "distill": distill}, indent=2))


if __name__ == "__main__":
    main()
