"""`tfft tune` benchmarks: a head-only search against separate `tfft train` runs, two processes on one study.

Run from the repo root (each section prints a markdown table):

    .venv/bin/python benchmarks/bench_tune.py search   [--data ../shared/datasets/pets-mini] [--trials 20] [--separate 3]
    .venv/bin/python benchmarks/bench_tune.py defaults [--data ../shared/datasets/pets-mini]
    .venv/bin/python benchmarks/bench_tune.py parallel [--data ../shared/datasets/pets-mini] [--trials 8]

`search`: `tfft tune` over a head-only space (rate, dropout, epochs; `efficientnet_lite0` with its
offline ImageNet weights, frozen, no augmentation) for `--trials` trials in one process, timed end
to end (one `tfft tune` subprocess); then the first `--separate` trials' configs (their
`trials/trial-NNNN/config.yaml`) each trained by its own `tfft train` subprocess, which is what a
user without `tune` does. With `--separate` below `--trials` the rest are taken at the measured
mean (a separate run's cost is mostly fixed: process start, imports, the backbone over every
image). The load average at the start of each measurement is printed beside it.

`defaults`: `tfft train` with the same data and backbone and tfft's defaults otherwise: the
searched keys at their defaults (head only: lr 1e-3, dropout 0.2, 5 epochs) and, with `--full`,
the complete default recipe (two_phase: 3 head epochs then 5 with the last block unfrozen,
horizontal flip). Compare their val accuracy with the search's best trial.

`parallel`: two `tfft tune` processes started together on one sqlite storage and study with
`--trials N`: wall time, trials each ran, finished trials in the study, distinct parameter sets.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared/datasets/pets-mini"
SPACE = {
    "schedule.lr": {"log_uniform": [1.0e-4, 3.0e-2]},
    "model.dropout": {"uniform": [0.0, 0.5]},
    "schedule.epochs": {"int": [2, 8]},
}


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}


def _tfft(*args: str, capture: bool = True) -> tuple[float, str]:
    """Run `tfft ARGS` in a fresh process; (wall seconds, output). Fails loudly on a non-zero exit."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "tfft.cli.main", *map(str, args)], env=_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"tfft {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stdout[-3000:]}")
    return seconds, proc.stdout


def _base_config(args: argparse.Namespace, name: str) -> dict:
    return {
        "name": name,
        "seed": 42,
        "data": {"source": str(args.data), "image_size": [args.size, args.size], "batch_size": 32},
        "model": {"backbone": args.backbone, "weights": "imagenet"},
        "schedule": {"preset": "feature_extraction"},
        "augment": {"horizontal_flip": False},
        "evaluate": {"splits": ["val"]},
    }


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "trials.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _trial_seconds(out: str) -> dict[int, float]:
    """Each progress line ends `| S s`: the trial's time inside the study."""
    seconds = {}
    for line in out.splitlines():
        if line.startswith("trial ") and line.rstrip().endswith(" s"):
            seconds[int(line.split()[1])] = float(line.rsplit("|", 1)[1].split()[0])
    return seconds


def bench_search(args: argparse.Namespace, work: Path) -> None:
    config = _write(work / "config.yaml", _base_config(args, "search"))
    space = _write(work / "space.yaml", SPACE)
    out = work / "tune"
    load = os.getloadavg()[0]
    total, log = _tfft("tune", config, "--space", space, "--trials", args.trials, "--run-dir", out)
    (work / "tune.log").write_text(log)
    rows = _rows(out)
    in_study = _trial_seconds(log)
    separate = []
    for number in range(min(args.separate, len(rows))):
        trial_config = out / "trials" / f"trial-{number:04d}" / "config.yaml"
        before = os.getloadavg()[0]
        seconds, _ = _tfft("train", trial_config, "--run-dir", work / f"separate-{number}")
        separate.append((number, seconds, in_study.get(number, float("nan")), before))
    # A separate run's cost is mostly fixed (process start, imports, the backbone over every image);
    # the head's epochs on features are seconds. So the unmeasured runs are taken at the measured mean.
    mean = sum(s for _, s, _, _ in separate) / max(len(separate), 1)
    extrapolated = sum(s for _, s, _, _ in separate) + mean * (len(rows) - len(separate))
    best = max((r for r in rows if r["state"] == "COMPLETE"), key=lambda r: float(r["value"]))
    print(f"\nsearch: {len(rows)} trials of {args.backbone} {args.size}x{args.size} on {args.data}\n")
    print("| what | wall time (s) | load average at its start |\n| --- | ---: | ---: |")
    print(f"| `tfft tune` {len(rows)} trials, one process (end to end) | {total:.0f} | {load:.1f} |")
    print(f"| sum of the trials' times inside the study | {sum(in_study.values()):.0f} | |")
    for number, seconds, inside, before in separate:
        print(f"| trial {number} as a separate `tfft train` (in the study: {inside:.0f} s) | {seconds:.0f} | {before:.1f} |")
    if len(separate) < len(rows):
        print(f"| {len(rows)} separate `tfft train` runs, extrapolated at {mean:.0f} s a run | {extrapolated:.0f} | |")
    else:
        print(f"| {len(rows)} separate `tfft train` runs | {extrapolated:.0f} | |")
    print(f"\nstates: {sorted((r['state'] for r in rows))}; "
          f"best: trial {best['number']}, val accuracy {float(best['value']):.4f} "
          f"({', '.join(f'{k}={best[k]}' for k in SPACE)})")


def bench_defaults(args: argparse.Namespace, work: Path) -> None:
    head = _base_config(args, "defaults-head")
    full = {"name": "defaults-full", "seed": 42,
            "data": {"source": str(args.data), "image_size": [args.size, args.size]},
            "model": {"backbone": args.backbone, "weights": "imagenet"}, "evaluate": {"splits": ["val"]}}
    print(f"\ndefaults: {args.backbone} {args.size}x{args.size}; load average {os.getloadavg()[0]:.1f}\n")
    print("| config | wall time (s) | val accuracy |\n| --- | ---: | ---: |")
    runs = [("head only, searched keys at their defaults (lr 1e-3, dropout 0.2, 5 epochs)", head)]
    if args.full:  # eight epochs through the backbone, five of them training its last block: slow on a CPU
        runs.append(("tfft defaults (two_phase 3 + 5 epochs, last block unfrozen, horizontal flip)", full))
    for label, config in runs:
        path = _write(work / f"{config['name']}.yaml", config)
        seconds, _ = _tfft("train", path, "--run-dir", work / config["name"])
        metrics = yaml.safe_load((work / config["name"] / "metrics.json").read_text())
        print(f"| {label} | {seconds:.0f} | {metrics['val']['accuracy']:.4f} |", flush=True)


def bench_parallel(args: argparse.Namespace, work: Path) -> None:
    config = _write(work / "config.yaml", _base_config(args, "parallel"))
    space = _write(work / "space.yaml", SPACE)
    storage = f"sqlite:///{work / 'shared.db'}"
    command = [sys.executable, "-m", "tfft.cli.main", "tune", str(config), "--space", str(space),
               "--trials", str(args.trials), "--storage", storage, "--study", "parallel", "--run-dir", str(work / "tune")]
    start = time.perf_counter()
    procs = [subprocess.Popen(command, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outputs = [p.communicate()[0] for p in procs]
    wall = time.perf_counter() - start
    if any(p.returncode for p in procs):
        sys.exit("a tune process failed:\n" + "\n".join(o[-2000:] for o in outputs))
    ran = [sorted(int(line.split()[1]) for line in o.splitlines() if line.startswith("trial ")) for o in outputs]
    rows = _rows(work / "tune")
    distinct = len({tuple(r[k] for k in SPACE) for r in rows})
    print(f"\nparallel: two processes, one sqlite study, --trials {args.trials}; "
          f"load average {os.getloadavg()[0]:.1f}\n")
    print("| wall time (s) | trials run by process 1 | by process 2 | rows in trials.csv | distinct parameter sets |")
    print("| ---: | --- | --- | ---: | ---: |")
    print(f"| {wall:.0f} | {ran[0]} | {ran[1]} | {len(rows)} | {distinct} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("section", choices=["search", "defaults", "parallel"])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--trials", type=int, default=None, help="search: 20; parallel: 8")
    parser.add_argument("--separate", type=int, default=3, help="search: trials also run as separate tfft train")
    parser.add_argument("--full", action="store_true", help="defaults: also the complete default recipe (two_phase)")
    parser.add_argument("--work", type=Path, default=None, help="keep the runs here (default: a temporary folder)")
    args = parser.parse_args()
    if args.trials is None:
        args.trials = 20 if args.section == "search" else 8
    work = args.work or Path(tempfile.mkdtemp(prefix=f"bench-tune-{args.section}-"))
    work.mkdir(parents=True, exist_ok=True)
    {"search": bench_search, "defaults": bench_defaults, "parallel": bench_parallel}[args.section](args, work)
    print(f"\n(runs in {work})")


if __name__ == "__main__":
    main()
