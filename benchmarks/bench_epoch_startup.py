"""What each epoch's fresh iterator costs a real `tfft train` epoch on pets-mini.

Run from the repo root:

    .venv/bin/python benchmarks/bench_epoch_startup.py [--data /work/shared/datasets/pets-mini] [--repeats 5]

1. The start-up and drain of an iterator, per pass: a pass over a fresh iterator minus a pass
   read from one long iterator (`bench_augment._pass_over`), paired in interleaved rounds, for the
   pipelines a training run builds: the augmented train pipeline (`tfft train` makes one iterator
   per phase) and the validation pipeline (Keras' `fit` makes a fresh one every epoch).
2. A real run, `tfft.train`: mobilenet_v3_small at 224 px, from scratch (no weights download
   here), pipeline augmentation, 3 epochs of the `full` preset on pets-mini; the per-epoch seconds
   are Keras' own (`training.verbose: line`), and the share of each epoch the start-ups take.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_augment  # noqa: E402  (rows, rounds and the one-iterator pass)
from bench_augment import BATCH, SIZE  # noqa: E402


def val_pass(data: Path, one_iterator: bool):
    from tfft import data as tfft_data
    from tfft.config import DataConfig

    cfg = DataConfig(source=str(data), image_size=SIZE, batch_size=BATCH)
    splits = tfft_data.load_splits(cfg, seed=1)
    ds = tfft_data.make_dataset(splits, "val", cfg, seed=1, training=False)
    n = len(splits.splits["val"])
    return bench_augment._pass_over(ds.repeat() if one_iterator else ds, -(-n // BATCH), one_iterator), n


def startups(data: Path, repeats: int) -> dict:
    """{pipeline: seconds a fresh iterator adds to a pass (median of paired rounds)}."""
    rows = {"train fresh": bench_augment.tf_pass(data, "fused", False),
            "train long": bench_augment.tf_pass(data, "fused", True),
            "val fresh": val_pass(data, False), "val long": val_pass(data, True)}
    rates = bench_augment._time_rounds(rows, repeats, passes=1)
    out = {}
    for name in ("train", "val"):
        n = rows[f"{name} fresh"][1]
        fresh, long = rates[f"{name} fresh"][0], rates[f"{name} long"][0]
        out[name] = (statistics.median(n / f - n / g for f, g in zip(fresh, long)), statistics.median(n / g for g in long))
    return out


def real_epochs(data: Path, epochs: int) -> list[float]:
    """Keras' seconds per epoch of a real `tfft.train` run."""
    import tfft

    cfg = {"name": "startup", "data": {"source": str(data), "image_size": list(SIZE), "batch_size": BATCH},
           "model": {"backbone": "mobilenet_v3_small", "weights": None, "bn_momentum": 0.9},
           "schedule": {"preset": "full", "epochs": epochs, "lr": 2e-3, "bn": "train"},
           "augment": dict(bench_augment.RECIPE, placement="pipeline"),
           "training": {"verbose": "line"}}
    out = io.StringIO()
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(out):
        tfft.train(cfg, run_dir=Path(tmp) / "run")
    seconds = [float(s) for s in re.findall(r"^\d+/\d+ - (\d+(?:\.\d+)?)s - ", out.getvalue(), re.M)]
    if not seconds:
        raise RuntimeError("no epoch lines in the run's output:\n" + out.getvalue()[-2000:])
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/datasets/pets-mini"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    data = Path(args.data)
    started = time.perf_counter()
    cost = startups(data, args.repeats)
    epochs = real_epochs(data, args.epochs)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    epoch = statistics.median(epochs)
    print(f"pets-mini at {SIZE[0]}x{SIZE[1]}, batch {BATCH}; {os.cpu_count()} CPU cores shared with other jobs "
          f"(load average {load:.1f}); {args.repeats} paired rounds; {time.perf_counter() - started:.0f} s in all\n")
    print("| iterator | made | start-up + drain, s a pass | a pass from one iterator, s | share of a training epoch |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name, made in (("train (augmented, fused)", "once a phase"), ("val", "every epoch")):
        extra, steady = cost[name.split()[0]]
        print(f"| {name} | {made} | {extra:.3f} | {steady:.2f} | {100 * extra / epoch:.1f}% |")
    print(f"\nreal epochs (mobilenet_v3_small, from scratch, full preset, pipeline augmentation): "
          f"{', '.join(f'{s:g}' for s in epochs)} s (Keras' figures); median {epoch:g} s")


if __name__ == "__main__":
    main()
