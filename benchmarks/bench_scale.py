"""From 10k to 100k images: wall time and peak RSS of every stage that reads a whole dataset.

Run from the repo root (the folders go to /tmp, never into the repository):

    .venv/bin/python benchmarks/bench_scale.py --sizes 10000 50000 [--work /tmp/tfft-scale]

For each N it generates a folder of N small JPEGs (64x64, 10 classes; each image a random 8x8
pattern upscaled, so pHashes differ; 1% planted exact copies and 1% planted near-duplicates,
re-encoded at another quality with a small brightness shift), then times each stage in its own
process (wall seconds, and that process's peak RSS from `os.wait4`):

- `train cold` / `train warm`: `tfft.train` (mobilenet_v3_small, weights null, 32 px, `full`)
  until its first training step ends, with an empty cache folder, then again (the scan index of
  the first start in place); the images the scan opened (its header probes) are counted;
- `data check`: `tfft data check DIR --json` (exact duplicates by sha256);
- `check --near-dup`: `tfft data check DIR --near-duplicates --json`, `data pack`:
  `tfft data pack DIR --out ...`: n/a where this tree has no such command;
- `near-dup search`: `tfft.studies.duplicates.find_duplicates` on pHashes alone (recall of the
  planted near-duplicates in the last column);
- `cv planning`: `tfft.studies.cv.plan_folds` (listing, near-duplicate groups, 5 folds).

Then the growth exponent of each stage between consecutive sizes (log(t2/t1) / log(n2/n1)) and
1M on paper: the largest size's time plus the marginal per-item cost between the last two sizes
(clamped at 0: a stage dominated by a fixed cost can measure negative) times the remaining items.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
CLASSES = 10
SIDE = 64
STAGES = ("train cold", "train warm", "data check", "check --near-dup", "data pack", "near-dup search",
          "cv planning")


# -- the folder ------------------------------------------------------------------------------


def generate(root: Path, n: int, seed: int = 0) -> dict:
    """N JPEGs under root/c<k>/, with planted exact and near duplicates; returns what was planted."""
    import io

    import numpy as np
    from PIL import Image

    marker = root / "planted.json"
    if marker.is_file():
        return json.loads(marker.read_text())
    shutil.rmtree(root, ignore_errors=True)
    for k in range(CLASSES):
        (root / f"c{k}").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    n_exact = n_near = n // 100
    n_base = n - n_exact - n_near
    paths = []
    for i in range(n_base):
        small = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        path = root / f"c{i % CLASSES}" / f"{i:07d}.jpg"
        small.resize((SIDE, SIDE), Image.BILINEAR).save(path, quality=90)
        paths.append(path)
    exact, near = [], []
    for j in range(n_exact):
        src = paths[int(rng.integers(n_base))]
        dst = src.parent / f"x{j:06d}.jpg"
        shutil.copyfile(src, dst)
        exact.append([str(src), str(dst)])
    for j in range(n_near):
        src = paths[int(rng.integers(n_base))]
        dst = src.parent / f"n{j:06d}.jpg"
        with Image.open(src) as img:
            arr = np.asarray(img.convert("RGB"), dtype=np.int16) + int(rng.integers(-6, 7))
        buf = io.BytesIO()
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=75)
        dst.write_bytes(buf.getvalue())
        near.append([str(src), str(dst)])
    planted = {"n": n, "exact": exact, "near": near}
    marker.write_text(json.dumps(planted))
    return planted


def _train_config(root: Path) -> dict:
    return {
        "data": {"source": str(root), "image_size": [32, 32], "batch_size": 32, "val_split": 0.1},
        "model": {"backbone": "mobilenet_v3_small", "weights": None},
        "schedule": {"preset": "full", "epochs": 1},
        "performance": {"cache_features": "off"},
        "training": {"verbose": "quiet"},
    }


# -- the stages (each runs as `bench_scale.py --stage NAME ROOT OUT` in its own process) -------------


def _timed(module, name: str) -> list[float]:
    """Wrap `module.name` to add up its seconds in the returned one-item list."""
    total, fn = [0.0], getattr(module, name)

    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            total[0] += time.perf_counter() - t

    setattr(module, name, wrapper)
    return total


def _stage_train(root: Path, out: Path) -> dict:
    import keras

    from tfft.data import index as scan_index
    from tfft.data import probe

    opened = [0]
    header = probe.probe_header

    def counting(path):
        opened[0] += 1
        return header(path)

    probe.probe_header = counting
    import tfft.data

    scan_seconds = _timed(scan_index, "scan")
    listing_seconds = _timed(tfft.data, "load_splits")

    class FirstStep(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            result = {"first_step_s": time.time() - float(os.environ["BENCH_T0"]), "opened": opened[0],
                      "scan_s": round(scan_seconds[0], 2),
                      "listing_s": round(listing_seconds[0], 2)}
            print("BENCH " + json.dumps(result), flush=True)
            os._exit(0)  # the first step is what this stage measures

    import tfft

    tfft.train(_train_config(root), run_dir=str(out), callbacks=[FirstStep()])
    return {}


def _stage_near(root: Path, out: Path) -> dict:
    from tfft.data.sources import list_images
    from tfft.studies import duplicates

    planted = json.loads((root / "planted.json").read_text())
    paths = list_images(root)
    pairs = duplicates.find_duplicates(paths, exact=False)
    found = {frozenset((p.path_a, p.path_b)) for p in pairs}
    hit = sum(frozenset(pair) in found for pair in planted["near"])
    return {"pairs": len(pairs), "recall": hit / max(1, len(planted["near"]))}


def _stage_cv(root: Path, out: Path) -> dict:
    from tfft.config import load_config
    from tfft.studies.cv import plan_folds

    plan = plan_folds(load_config(_train_config(root)), 5)
    return {"groups": int(plan.num_groups)}


def run_stage(name: str, root: Path, out: Path) -> None:
    sys.path.insert(0, str(REPO))
    result = {"train": _stage_train, "near": _stage_near, "cv": _stage_cv}[name](root, out)
    print("BENCH " + json.dumps(result), flush=True)


# -- the parent: one process per stage, wall time and peak RSS ---------------------------------


def measure(cmd: list[str], env: dict, timeout: float) -> dict:
    """Run `cmd`; wall seconds, the child's peak RSS (MiB), its BENCH result and exit status."""
    t0 = time.time()
    env = dict(env, BENCH_T0=repr(t0))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=REPO)
    out_lines: list[str] = []
    deadline = t0 + timeout
    import threading

    reader = threading.Thread(target=lambda: out_lines.extend(proc.stdout), daemon=True)
    reader.start()
    status, usage = 0, None
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.time() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            return {"wall": None, "timeout": timeout, "rss": usage.ru_maxrss / 1024}
        time.sleep(0.05)
    wall = time.time() - t0
    reader.join(5)
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = "".join(out_lines)
    result = {}
    for line in text.splitlines():
        if line.startswith("BENCH "):
            result.update(json.loads(line[6:]))
    return {"wall": wall, "rss": usage.ru_maxrss / 1024, "rc": proc.returncode, "result": result, "text": text}


def _missing_command(m: dict) -> bool:
    return m.get("rc") == 2 and ("No such command" in m["text"] or "No such option" in m["text"])


def bench_size(n: int, work: Path, timeout: float, only: tuple[str, ...] = ()) -> dict:
    root = work / f"n{n}"
    t = time.time()
    planted = generate(root, n)
    print(f"# N={n}: folder ready in {time.time() - t:.1f} s ({len(planted['exact'])} exact, "
          f"{len(planted['near'])} near duplicates planted)", flush=True)
    cache = work / f"cache-{n}"
    if not only or "train cold" in only:
        shutil.rmtree(cache, ignore_errors=True)
    env = dict(os.environ, TFFT_CACHE_DIR=str(cache), PYTHONPATH=str(REPO))
    py = [sys.executable]
    me = [*py, str(Path(__file__).resolve()), "--stage"]
    runs = work / f"runs-{n}"
    shutil.rmtree(runs, ignore_errors=True)
    cmds = {
        "train cold": [*me, "train", str(root), str(runs / "cold")],
        "train warm": [*me, "train", str(root), str(runs / "warm")],
        "data check": [*py, "-m", "tfft", "data", "check", str(root), "--json"],
        "check --near-dup": [*py, "-m", "tfft", "data", "check", str(root), "--near-duplicates", "--json"],
        "data pack": [*py, "-m", "tfft", "data", "pack", str(root), "--out", str(work / f"pack-{n}")],
        "near-dup search": [*me, "near", str(root), str(runs / "near")],
        "cv planning": [*me, "cv", str(root), str(runs / "cv")],
    }
    rows = {}
    for stage, cmd in cmds.items():
        if only and stage not in only:
            continue
        m = measure(cmd, env, timeout)
        if _missing_command(m):
            m = {"wall": None, "na": True}
        elif m.get("wall") is not None and m["result"].get("first_step_s") is not None:
            m["wall"] = m["result"]["first_step_s"]
        rows[stage] = m
        print(f"#   {stage}: {_cell(m)}  {_note(m)}", flush=True)
        if m.get("rc") not in (None, 0) and not m.get("na"):
            print("\n".join(m["text"].splitlines()[-8:]), file=sys.stderr)
    shutil.rmtree(work / f"pack-{n}", ignore_errors=True)
    return rows


def _cell(m: dict) -> str:
    if m.get("na"):
        return "n/a"
    if m.get("wall") is None:
        return f">{m['timeout']:.0f} s"
    return f"{m['wall']:.1f} s, {m['rss']:.0f} MiB"


def _note(m: dict) -> str:
    r = m.get("result") or {}
    bits = []
    if "opened" in r:
        bits.append(f"images opened {r['opened']}, scan {r['scan_s']} s"
                    + (f", load_splits {r['listing_s']} s" if "listing_s" in r else ""))
    if "recall" in r:
        bits.append(f"{r['pairs']} pairs, recall {r['recall']:.3f}")
    if "groups" in r:
        bits.append(f"{r['groups']} groups")
    if m.get("rc") not in (None, 0):
        bits.append(f"exit {m['rc']}")
    return "; ".join(bits)


def report(sizes: list[int], table: dict[int, dict], stages=STAGES) -> None:
    head = ["stage"] + [f"N={n}" for n in sizes] + [f"exp {a}->{b}" for a, b in zip(sizes, sizes[1:])] + [
        "1M on paper (s)", "notes (largest N)"]
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for stage in stages:
        cells = [stage] + [_cell(table[n][stage]) for n in sizes]
        times = [table[n][stage].get("wall") for n in sizes]
        for (a, ta), (b, tb) in zip(zip(sizes, times), zip(sizes[1:], times[1:])):
            cells.append(f"{math.log(tb / ta) / math.log(b / a):.2f}" if ta and tb else "-")
        if len(sizes) >= 2 and times[-1] and times[-2]:
            per_item = max(0.0, (times[-1] - times[-2]) / (sizes[-1] - sizes[-2]))  # noise can make it < 0
            cells.append(f"{times[-1] + per_item * (1_000_000 - sizes[-1]):.0f}")
        else:
            cells.append("-")
        cells.append(_note(table[sizes[-1]][stage]))
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/tfft-scale"))
    parser.add_argument("--timeout", type=float, default=1800, help="seconds a stage may take")
    parser.add_argument("--only", nargs="+", default=(), choices=STAGES, metavar="STAGE",
                        help="run these stages alone (without 'train cold' the cache folder is kept)")
    parser.add_argument("--stage", nargs=3, metavar=("NAME", "ROOT", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        run_stage(args.stage[0], Path(args.stage[1]), Path(args.stage[2]))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    table = {}
    for n in args.sizes:  # the table so far after each size: a long run is useful before it ends
        table[n] = bench_size(n, args.work, args.timeout, tuple(args.only))
        report(list(table), table, [s for s in STAGES if not args.only or s in args.only])


if __name__ == "__main__":
    main()
