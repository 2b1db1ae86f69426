"""Wall seconds of `tfft.train` on a folder, one checkout against another, each run in a fresh process.

Run from the repo root:

    .venv/bin/python benchmarks/bench_train_wall.py [--data /work/shared/datasets/pets-mini]
        [--epochs 10] [--rounds 3] [--other PATH]

The run: a two-convolution backbone (saved once to a temporary `.keras` file, so the input
pipeline, not the network, is most of the time), 96x96 images, batch 32, flips and rotation in the
pipeline, `schedule.preset: full` for `--epochs` epochs, the feature store off, the decoded cache
as the config's default (`auto`). Timed: the `tfft.train` call (imports and the backbone file
apart). `--other` is the root of another checkout of tfft (a `git worktree` of the revision to
compare), run in alternation with this one, round by round.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]


def one(tree: str, data: str, epochs: int, backbone: str) -> float:
    """Train once with the tfft of `tree`, in this process; the seconds `tfft.train` took."""
    sys.path.insert(0, tree)
    import keras

    import tfft

    if not os.path.exists(backbone):
        inputs = keras.Input((None, None, 3))
        x = keras.layers.Rescaling(1 / 255)(inputs)
        x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu",
                                kernel_initializer=keras.initializers.GlorotUniform(seed=0))(x)
        x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu",
                                kernel_initializer=keras.initializers.GlorotUniform(seed=1))(x)
        keras.Model(inputs, x).save(backbone)
    config = {"name": "bench", "seed": 1,
              "data": {"source": data, "image_size": [96, 96], "batch_size": 32},
              "model": {"backbone": f"keras:{backbone}", "weights": None},
              "schedule": {"preset": "full", "epochs": epochs},
              "augment": {"horizontal_flip": True, "rotation_range": 20},
              "performance": {"feature_store": "off"},
              "training": {"verbose": "quiet"}}
    with tempfile.TemporaryDirectory(prefix="bench_train_wall_") as folder:
        start = time.perf_counter()
        tfft.train(config, run_dir=str(Path(folder) / "run"))
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared/datasets/pets-mini"))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--other", help="the root of another checkout, timed in alternation")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a tree: train once in this process, print seconds
    parser.add_argument("--backbone", default=os.path.join(tempfile.gettempdir(), "bench-train-wall-tiny.keras"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(f"{one(args.one, args.data, args.epochs, args.backbone):.3f}")
        return
    trees = {"this checkout": str(ROOT)}
    if args.other:
        trees["--other"] = str(Path(args.other).resolve())
    print(f"{args.data}: {args.epochs} epochs, {args.rounds} rounds, load average {os.getloadavg()[0]:.1f}")
    got: dict = {name: [] for name in trees}
    for _ in range(args.rounds):
        for name, tree in trees.items():
            out = subprocess.run([sys.executable, __file__, "--data", args.data, "--epochs", str(args.epochs),
                                  "--backbone", args.backbone, "--one", tree],
                                 check=True, capture_output=True, text=True).stdout
            got[name].append(float(out.strip().splitlines()[-1]))
    for name, seconds in got.items():
        print(f"{name} ({trees[name]}): tfft.train s per round " + " ".join(f"{s:.2f}" for s in seconds)
              + f" | min {min(seconds):.2f}")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
