"""Multi-label benchmark: pets-mini mosaics (two photos side by side, labelled with the classes shown).

Run from the repo root:

    .venv/bin/python benchmarks/bench_multilabel.py [--data ../shared/datasets/pets-mini]
        [--backbone efficientnet_lite0] [--weights imagenet] [--size 160] [--epochs 6] [--folds K]

The mosaics are built in a temporary folder by `tfft.data.mosaics.build_mosaics`: every pets-mini photo appears in two mosaics of its
own split (once on the left, once on the right, with two random partners), so a mosaic shows `cat`, `dog` or `cat dog`. The train photos give the
training mosaics; the val photos are halved (per class) into a validation half, on which the
thresholds are chosen, and a test half, on which everything is reported, so the tuned thresholds
are never scored on the images that chose them. One `tfft.train` run (frozen backbone, head
only, `task: multi_label` from the manifest) then prints a markdown table: mAP, micro and macro F1
at the tuned thresholds and at 0.5, and per label AP, F1 and threshold.

With `--folds K` the same config is cross-validated instead (`tfft.cv` over the train+val
mosaics, folds stratified per label, `--ensemble`): per-fold and out-of-fold mAP / F1, the folds
on the held-back test mosaics, and the fold ensemble on them at its thresholds (the mean of the
folds').
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# ../shared beside the repo (a worktree sits one level deeper: ../../shared).
DEFAULT_DATA = next((up / "shared/datasets/pets-mini" for up in Path(__file__).resolve().parents[1:4]
                     if (up / "shared/datasets/pets-mini").is_dir()),
                    Path(__file__).resolve().parents[2] / "shared/datasets/pets-mini")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--weights", default="imagenet")
    parser.add_argument("--size", type=int, default=160, help="side of each photo in the mosaic (and of the input)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None, help="write the mosaics and the run here (kept)")
    parser.add_argument("--folds", type=int, default=None, help="cross-validate with K folds instead of one run")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    import tfft
    from tfft.data.mosaics import build_mosaics

    work = Path(tempfile.mkdtemp(prefix="tfft-mosaics-")) if args.keep is None else args.keep
    started = time.time()
    manifest = build_mosaics(args.data, work / "mosaics", args.size, args.seed)  # tfft.data.mosaics
    counts: dict[str, dict[str, int]] = {}
    with open(manifest) as handle:
        for row in csv.DictReader(handle):
            counts.setdefault(row["split"], {}).setdefault(row["labels"], 0)
            counts[row["split"]][row["labels"]] += 1
    config = {
        "name": "mosaics", "seed": args.seed, "task": "multi_label",
        "data": {"source": f"csv:{manifest}", "image_size": [args.size, 2 * args.size], "batch_size": 32},
        "model": {"backbone": args.backbone, "weights": None if args.weights in ("none", "null") else args.weights,
                  "dropout": 0.2},
        "schedule": {"preset": "feature_extraction", "epochs": args.epochs, "lr": 1e-3},
        "augment": {"horizontal_flip": False},
        "evaluate": {"splits": ["val", "test"]},
        "training": {"verbose": "line"},
    }
    if args.folds:
        _cross_validate(config, work, args, counts, started)
        return
    result = tfft.train(config, run_dir=str(work / "run"))
    thresholds = json.loads((result.run_dir / "thresholds.json").read_text())
    test = result.metrics["test"]
    val = result.metrics["val"]
    print(f"\n{os.cpu_count()} CPU cores (shared machine), TF {tf.__version__}, Keras {keras.__version__}; "
          f"{args.backbone} weights={args.weights}, input {args.size}x{2 * args.size}, "
          f"{args.epochs} head epochs; {time.time() - started:.0f} s end to end")
    print(f"mosaics per split and label set: {json.dumps(counts, sort_keys=True)}\n")
    print("| split | mAP | micro F1 (tuned) | macro F1 (tuned) | micro F1 @0.5 | macro F1 @0.5 | exact match |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, m in (("val (chose the thresholds)", val), ("test", test)):
        print(f"| {name} | {m['mAP']:.4f} | {m['micro_f1']:.4f} | {m['macro_f1']:.4f} | "
              f"{m['micro_f1_at_0.5']:.4f} | {m['macro_f1_at_0.5']:.4f} | {m['accuracy']:.4f} |")
    print("\n| label | threshold | test AP | test F1 (tuned) | test F1 @0.5 | test support |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, row in test["per_class"].items():
        print(f"| {label} | {thresholds[label]:.3f} | {row['ap']:.4f} | {row['f1']:.4f} | {row['f1_at_0.5']:.4f} | "
              f"{row['support']} |")
    print(f"\nrun dir: {result.run_dir}")


def _cross_validate(config: dict, work: Path, args: argparse.Namespace, counts: dict, started: float) -> None:
    import tfft

    config = dict(config, training={"verbose": "quiet"})
    result = tfft.cv(config, folds=args.folds, run_dir=str(work / "cv"), ensemble=True)
    summary = result.summary
    ensemble = json.loads((result.run_dir / "ensemble" / "metrics.json").read_text()).get("test", {})
    print(f"\n{os.cpu_count()} CPU cores (shared machine); {args.backbone} weights={args.weights}, input "
          f"{args.size}x{2 * args.size}, {args.epochs} head epochs, {args.folds} folds; "
          f"{time.time() - started:.0f} s end to end (cv {summary['seconds']['total']:.0f} s)")
    print(f"mosaics per split and label set: {json.dumps(counts, sort_keys=True)}; fold sizes {summary['fold_images']}\n")
    names = ("mAP", "micro_f1", "macro_f1", "micro_f1_at_0.5", "macro_f1_at_0.5")
    print("| rows | " + " | ".join(names) + " |")
    print("| --- | " + " | ".join("---" for _ in names) + " |")
    m = summary["metrics"]
    print("| val, mean ± std over folds (tuned F1 in-sample) | "
          + " | ".join(f"{m[n]['mean']:.4f} ± {m[n]['std']:.4f}" for n in names) + " |")
    print("| out of fold, pooled | " + " | ".join(f"{summary['oof'][n]:.4f}" for n in names) + " |")
    if "test" in summary:
        t = summary["test"]
        print("| test, mean ± std over the fold models | "
              + " | ".join(f"{t[n]['mean']:.4f} ± {t[n]['std']:.4f}" for n in names) + " |")
    if ensemble:
        print("| test, fold ensemble (mean thresholds) | " + " | ".join(f"{ensemble[n]:.4f}" for n in names) + " |")
    print("\nthresholds: " + "; ".join(f"{fold} " + ", ".join(f"{k} {v:.3f}" for k, v in cuts.items())
                                       for fold, cuts in summary["thresholds"].items()))
    if "thresholds" in summary.get("ensemble", {}):
        print("ensemble: " + ", ".join(f"{k} {v:.3f}" for k, v in summary["ensemble"]["thresholds"].items()))
    print(f"\nrun dir: {result.run_dir}")


if __name__ == "__main__":
    main()
