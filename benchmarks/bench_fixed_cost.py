"""Where the fixed cost of a short `tfft train` goes: one row per stage.

Run from the repo root:

    .venv/bin/python benchmarks/bench_fixed_cost.py [--data ../shared/datasets/pets-mini]
        [--backbone efficientnet_lite0] [--size 128] [--epochs 10] [--set KEY=VALUE ...]

One `tfft.train` run, in this process, of a frozen-backbone phase on cached features (the case
where the fixed cost is most of the wait: `schedule.preset: feature_extraction`, `--epochs`
epochs, default augmentation, so the flip cache). The stages are timed by wrapping the methods
of the run lifecycle (`tfft.training.session`, `execute`, `finish`) and `tfft.training.assembly.Assembly` (nothing in tfft changes): start-up (imports: `import tfft`,
TensorFlow, Keras), set-up (strategy, seeds, config.yaml), the data scan, the model build (with
the ImageNet weights), the feature pass, compile, fit (split into its first step, which traces,
and the rest), and the end of the run: model.keras, the evaluation, the plots, the report.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

T0 = time.perf_counter()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_DATA = next((p / "shared/datasets/pets-mini" for p in Path(__file__).resolve().parents[2:4]
                     if (p / "shared/datasets/pets-mini").is_dir()),
                    Path(__file__).resolve().parents[2] / "shared/datasets/pets-mini")
TIMES: dict[str, float] = defaultdict(float)


def _timed(owner, name: str, label: str) -> None:
    real = getattr(owner, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            TIMES[label] += time.perf_counter() - start

    setattr(owner, name, wrapper)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    start = time.perf_counter()
    import keras
    import tensorflow as tf

    import tfft
    from tfft.training import assembly, execute, finish, run

    TIMES["start-up: import tfft, TensorFlow, Keras"] = time.perf_counter() - start + (start - T0)

    class FirstStep(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if "first" not in self.__dict__:
                self.first = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            if self.__dict__.get("first") is not None and "first_done" not in self.__dict__:
                self.first_done = time.perf_counter() - self.first

    real_fit = execute.PhaseLoop.fit

    def fit(self, *a, **k):
        probe = FirstStep()
        a = list(a)
        a[7] = list(a[7]) + [probe]  # fit(cache, start, first, end, skip, steps, val_data, callbacks, verbose)
        start = time.perf_counter()
        try:
            return real_fit(self, *a, **k)
        finally:
            total = time.perf_counter() - start
            first = getattr(probe, "first_done", 0.0)
            TIMES["fit: first step (tracing)"] += first
            TIMES["fit: the other steps, validation, checkpoints"] += total - first

    execute.PhaseLoop.fit = fit
    for owner, name, label in [(run, "start_session", "set-up: strategy, seeds, config.yaml, environment.json"),
                               (assembly.Assembly, "_data", "data scan"),
                               (assembly.Assembly, "_augmenter", "augmenter"),
                               (assembly.Assembly, "_model", "model build with ImageNet weights"),
                               (execute.PhaseLoop, "feature_cache", "feature cache: the backbone pass over train + val"),
                               (execute.PhaseLoop, "compile", "compile, optimizer build"),
                               (finish, "evaluate_splits", "end: evaluation (val predictions, metrics, confusion matrix)"),
                                                              (run, "finish_run", "end: total (model.keras, evaluation, plots, report)")]:
        _timed(owner, name, label)

    out = Path(tempfile.mkdtemp(prefix="bench-fixed-"))
    cfg = tfft.load_config({"name": "fixed", "data": {"source": str(args.data), "image_size": [args.size, args.size]},
                            "model": {"backbone": args.backbone},
                            "schedule": {"preset": "feature_extraction", "epochs": args.epochs},
                            "training": {"verbose": "line"}}, overrides=args.overrides)
    start = time.perf_counter()
    result = tfft.train(cfg, run_dir=str(out / "run"))
    TIMES["tfft.train total"] = time.perf_counter() - start
    total = TIMES["tfft.train total"]
    end = TIMES.pop("end: total (model.keras, evaluation, plots, report)")
    TIMES["end: model.keras, metrics.json, report.md"] = end - TIMES["end: evaluation (val predictions, metrics, confusion matrix)"] - TIMES["end: curves.png"]
    accounted = sum(v for k, v in TIMES.items() if k not in ("tfft.train total",) and not k.startswith("start-up"))
    TIMES["other (between stages)"] = total - accounted

    print(f"\n{os.cpu_count()} CPU cores, TF {tf.__version__}, Keras {keras.__version__}; {args.backbone} at "
          f"{args.size}x{args.size}, {args.data.name}, feature_extraction {args.epochs} epochs; overrides "
          f"{args.overrides}; val accuracy {result.metrics['val']['accuracy']:.4f}\n")
    print("| stage | seconds |")
    print("| --- | ---: |")
    for label, seconds in TIMES.items():
        if label != "tfft.train total":
            print(f"| {label} | {seconds:.1f} |")
    print(f"| **tfft.train total (beyond imports)** | **{total:.1f}** |")
    fixed = total - TIMES["feature cache: the backbone pass over train + val"] - \
        TIMES["fit: the other steps, validation, checkpoints"]
    print(f"| fixed cost (total minus the feature pass and the epochs) | {fixed:.1f} |")


if __name__ == "__main__":
    main()
