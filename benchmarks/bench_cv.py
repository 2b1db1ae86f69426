"""Cross-validation benchmark: K folds against one run, with and without the persistent feature store.

Run from the repo root (prints a markdown table):

    .venv/bin/python benchmarks/bench_cv.py [--data ../shared/datasets/pets-mini] [--backbone efficientnet_lite0]
        [--weights imagenet] [--folds 5] [--epochs 5] [--no-store-baseline]

Each row is one CLI process, one after the other, as a user runs them: `tfft train` of a head-only
config (`schedule.preset: feature_extraction`, no augmentation, so the frozen-feature cache
applies), then `tfft cv --folds K` of the same config with a fresh persistent store (fold 1
computes every train+val image's features, folds 2..K read them), then, unless
`--no-store-baseline`, the same cv with `performance.feature_store: off` (every fold computes its
own). Wall time end to end (start-up, data scan, model builds, training, evaluation, artifacts) and
the validation accuracy: the single run's on the source's val split, the cv's mean ± std over folds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent.parent / "shared/datasets/pets-mini" if REPO.parent.name == "wt" else \
    REPO.parent / "shared/datasets/pets-mini"


def _config(args: argparse.Namespace, store: str) -> dict:
    return {
        "name": "bench-cv",
        "seed": 0,
        "data": {"source": str(args.data), "image_size": [args.size, args.size], "batch_size": 32},
        "model": {"backbone": args.backbone, "weights": args.weights, "dropout": 0.2},
        "schedule": {"preset": "feature_extraction", "epochs": args.epochs, "lr": 1e-3},
        "augment": {"horizontal_flip": False},
        "performance": {"feature_store": store},
        "training": {"verbose": "line"},
    }


def _run(command: list[str], log: Path) -> float:
    started = time.time()
    with open(log, "w") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}); see {log}")
    return time.time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--weights", default="imagenet")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--no-store-baseline", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-cv-"))
    out.mkdir(parents=True, exist_ok=True)
    tfft = [sys.executable, "-m", "tfft.cli.main"]
    rows: list[tuple[str, float, str]] = []
    print(f"\n{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} at the start; {args.backbone} "
          f"weights {args.weights} at {args.size}, {args.epochs} head epochs; runs in {out}\n")
    print("| what | wall time (s) | vs one run | val accuracy |")
    print("| --- | ---: | ---: | --- |", flush=True)

    def row(title: str, seconds: float, accuracy: str) -> None:
        rows.append((title, seconds, accuracy))
        print(f"| {title} | {seconds:.0f} | {seconds / rows[0][1]:.2f}x | {accuracy} |", flush=True)

    single = out / "single.yaml"
    single.write_text(yaml.safe_dump(_config(args, str(out / "store-single"))))
    seconds = _run(tfft + ["train", str(single), "--run-dir", str(out / "single")], out / "single.log")
    accuracy = json.loads((out / "single" / "metrics.json").read_text())["val"]["accuracy"]
    row("one run (`tfft train`), fresh store", seconds, f"{accuracy:.4f} (val split)")

    variants = [("store", str(out / "store-cv"), f"`tfft cv --folds {args.folds}`, fresh store")]
    if not args.no_store_baseline:
        variants.append(("nostore", "off", f"`tfft cv --folds {args.folds}`, `feature_store: off`"))
    for tag, store, title in variants:
        config = out / f"cv-{tag}.yaml"
        config.write_text(yaml.safe_dump(_config(args, store)))
        seconds = _run(tfft + ["cv", str(config), "--folds", str(args.folds), "--run-dir", str(out / f"cv-{tag}")],
                       out / f"cv-{tag}.log")
        summary = json.loads((out / f"cv-{tag}" / "cv_summary.json").read_text())
        acc = summary["metrics"]["accuracy"]
        row(title, seconds, f"{acc['mean']:.4f} ± {acc['std']:.4f} (folds: "
            + ", ".join(f"{v:.3f}" for v in acc["per_fold"]) + f"; OOF {summary['oof']['accuracy']:.4f})")



if __name__ == "__main__":
    main()
