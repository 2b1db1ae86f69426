"""What a phase's training pipeline costs before its first batch, and per epoch, against an earlier commit's.

Run from the repo root:

    .venv/bin/python benchmarks/bench_phase_startup.py --data /work/shared/datasets/pets-mini [--before main]
        [--repeats 3] [--epochs 3]

For the augmented pipeline `tfft train` runs (seed recipe, fused resize and warp, 224 px, batch
32): `make_dataset` (the phase's build: tracing), `iter()` (the iterator's start-up: instantiating
the functions), the first batch, and the whole of `--epochs` epochs read from one iterator, in
wall and CPU seconds (this process, all threads), best of `--repeats`. Rows: `tfft/data/pipeline.py`
as it is at `--before` (loaded from git into a module of its own), this tree's without and with
the decoded cache.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_augment import BATCH, RECIPE, SIZE  # noqa: E402


def _pipeline_at(rev: str):
    """`tfft/data/pipeline.py` as it is at `rev`, as a module of its own (`tfft.data._pipeline_before`)."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:tfft/data/pipeline.py"], check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "pipeline_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("tfft.data._pipeline_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/work/shared/datasets/pets-mini")
    parser.add_argument("--before", default="main")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    from tfft import augment as tfft_augment
    from tfft import data as tfft_data
    from tfft.config import AugmentConfig, DataConfig
    from tfft.data import decoded_cache
    from tfft.data import pipeline as now

    cfg = DataConfig(source=args.data, image_size=SIZE, batch_size=BATCH)
    splits = tfft_data.load_splits(cfg, seed=1)
    on_decoded, augment_fn = tfft_augment.build_augmenter(AugmentConfig(**RECIPE), SIZE,
                                                          splits.num_classes).pipeline_steps()
    before = _pipeline_at(args.before)
    n = len(splits.splits["train"])
    rows = {f"{args.before}": (before, {}), "this tree, no decoded cache": (now, {}),
            "this tree, decoded cache": (now, {"decoded_cache": decoded_cache.DecodedCachePolicy()})}
    best: dict = {}
    for _ in range(args.repeats):
        for name, (module, extra) in rows.items():
            decoded_cache.release()
            marks = [(time.perf_counter(), time.process_time())]
            ds = module.make_dataset(splits, "train", cfg, seed=1, training=True, epochs=range(args.epochs),
                                     augment_fn=augment_fn, on_decoded=on_decoded, **extra)
            marks.append((time.perf_counter(), time.process_time()))
            iterator = iter(ds)
            marks.append((time.perf_counter(), time.process_time()))
            next(iterator)
            marks.append((time.perf_counter(), time.process_time()))
            for _ in iterator:
                pass
            marks.append((time.perf_counter(), time.process_time()))
            steps = [tuple(b[i] - a[i] for i in (0, 1)) for a, b in zip(marks, marks[1:])]
            total = (marks[-1][0] - marks[0][0], marks[-1][1] - marks[0][1])
            if name not in best or total[1] < best[name][-1][1]:
                best[name] = (*steps, total)
    load = os.getloadavg()[0]
    print(f"{n} train images of {Path(args.data).name} -> {SIZE[0]}x{SIZE[1]}, batch {BATCH}, seed recipe fused; "
          f"{args.epochs} epochs from one iterator; best of {args.repeats} (by CPU); {os.cpu_count()} cores shared "
          f"with other jobs (load average {load:.1f})\n")
    print("| pipeline | make_dataset s (CPU) | iter() s (CPU) | first batch s (CPU) | the rest s (CPU) | "
          f"{args.epochs} epochs in all s (CPU) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, parts in best.items():
        print(f"| {name} | " + " | ".join(f"{w:.2f} ({c:.2f})" for w, c in parts) + " |")


if __name__ == "__main__":
    main()
