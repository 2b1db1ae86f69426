"""From 10k to 100k images: wall time, CPU time and peak RSS of every stage that reads a whole dataset.

Run from the repo root (the folders go to --work, never into the repository):

    .venv/bin/python benchmarks/bench_scale.py --sizes 10000 50000 100000 [--work /tmp/tfft-scale] [--repeat 2]

For each N it generates a folder of N small JPEGs (64x64, 10 classes; each image a random 8x8
pattern upscaled, so pHashes differ; 1% planted exact copies and 1% planted near-duplicates,
re-encoded at another quality with a small brightness shift), then times each stage in its own
process: wall seconds, the child's CPU seconds (user + system, `os.wait4`: the figure the machine's
other load disturbs least) and its peak RSS; with --repeat R each quick stage runs R times (the
train stages and `data pack`: --repeat-slow) and the best wall and best CPU are kept. The load
average is recorded beside every figure.

- `train cold` / `train warm`: `tfft.train` (mobilenet_v3_small, weights null, 32 px, `full`)
  until its first training step ends, with an empty cache folder (each repeat empties it), then
  with the scan index of the cold start in place. Counted up to the start of training (before
  the first batch is read): the image files opened (an audit hook on every `open` of a .jpg/.png
  path), the header probes and check decodes of the scan (`tfft.data.probe`);
- `data check`: `tfft data check DIR --json` (after train: probes from the index, sha256 computed
  and stored; run once, as a repeat would read the stored hashes);
- `check --near-dup`: `tfft data check DIR --near-duplicates --json`;
- `data pack`: `tfft data pack DIR --out ...` (the output is removed after each run);
- `near-dup search`: `tfft.studies.duplicates.find_duplicates` on pHashes alone (recall of the
  planted near-duplicates); in-process, the hashing and the search (`phash_pairs`) apart, and the
  search alone again 5 times on the same hashes (best CPU seconds): the algorithm's own exponent;
- `cv planning`: `tfft.studies.cv.plan_folds` (listing, exact and pHash duplicates, groups,
  5 folds), with its parts timed in-process.

Then the growth exponent of each stage between sizes (log(t2/t1) / log(n2/n1)), from wall and from
CPU seconds, and 1M on paper: the largest size's time plus the marginal per-item cost between the
last two sizes (clamped at 0) times the remaining items. `--search-only ROUNDS` times the pHash
search alone on synthetic hashes (sizes alternated in one process). --json FILE keeps every figure (merged
with the file's earlier sizes and stages, so sizes can be run separately and reported together:
`--report-only`).
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
from typing import Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
CLASSES = 10
SIDE = 64
STAGES = ("train cold", "train warm", "data check", "check --near-dup", "data pack", "near-dup search",
          "cv planning")
ONCE = ("data check",)  # a repeat would measure something else (the hashes stored by the first run)
SLOW = ("train cold", "train warm", "data pack")  # repeated --repeat-slow times (default once)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


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


def _timed(module, name: str) -> dict:
    """Wrap `module.name` to add up its wall and CPU seconds (whole process) in the returned dict."""
    total, fn = {"wall": 0.0, "cpu": 0.0, "calls": 0}, getattr(module, name)

    def wrapper(*args, **kwargs):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            total["wall"] += time.perf_counter() - wall
            total["cpu"] += time.process_time() - cpu
            total["calls"] += 1

    setattr(module, name, wrapper)
    return total


def _rounded(parts: dict) -> dict:
    return {name: {k: round(v, 3) if isinstance(v, float) else v for k, v in part.items()}
            for name, part in parts.items()}


def _count_image_opens() -> dict:
    """Count every `open` (builtins, io, os) of an image file path from now on (an audit hook)."""
    counter = {"images": 0}

    def hook(event, args):
        if event == "open" and args and isinstance(args[0], (str, bytes)):
            path = args[0].decode("utf-8", "replace") if isinstance(args[0], bytes) else args[0]
            if path.lower().endswith(IMAGE_SUFFIXES):
                counter["images"] += 1

    sys.addaudithook(hook)
    return counter


def _stage_train(root: Path, out: Path) -> dict:
    import resource

    import keras

    import tfft
    import tfft.data
    from tfft.data import index as scan_index
    from tfft.data import probe

    opens = _count_image_opens()
    parts = {"scan": _timed(scan_index, "scan"), "load_splits": _timed(tfft.data, "load_splits"),
             "probes": _timed(probe, "probe_header"), "check decodes": _timed(probe, "pil_decode_checked")}
    tf_checked, verify_tf = [0], probe._verify_tf

    def counting_verify(probes):  # the scan's check decodes through TensorFlow, one pass for many files
        tf_checked[0] += len(probes)
        return verify_tf(probes)

    probe._verify_tf = counting_verify
    before = {}

    class FirstStep(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):  # nothing of the first batch is read yet
            before.update(images_opened=opens["images"], probes=parts["probes"]["calls"],
                          check_decodes=parts["check decodes"]["calls"] + tf_checked[0])

        def on_train_batch_end(self, batch, logs=None):
            usage = resource.getrusage(resource.RUSAGE_SELF)
            result = {"first_step_s": time.time() - float(os.environ["BENCH_T0"]),
                      "first_step_cpu": usage.ru_utime + usage.ru_stime, **before,
                      "parts": _rounded({k: parts[k] for k in ("scan", "load_splits")})}
            print("BENCH " + json.dumps(result), flush=True)
            os._exit(0)  # the first step is what this stage measures

    tfft.train(_train_config(root), run_dir=str(out), callbacks=[FirstStep()])
    return {}


def _stage_near(root: Path, out: Path) -> dict:
    from tfft.data import near_duplicates
    from tfft.data.sources import list_images
    from tfft.studies import duplicates

    planted = json.loads((root / "planted.json").read_text())
    parts = {"hashing": _timed(duplicates, "phash_hashes"), "search": _timed(duplicates, "phash_pairs")}
    paths = list_images(root)
    pairs = duplicates.find_duplicates(paths, exact=False)
    found = {frozenset((p.path_a, p.path_b)) for p in pairs}
    hit = sum(frozenset(pair) in found for pair in planted["near"])
    hashes, ok = near_duplicates.phash_hashes(paths)  # memoised: no decoding again
    best = []
    for _ in range(5):  # the search alone on the same hashes: its own exponent, best of 5
        wall, cpu = time.perf_counter(), time.process_time()
        near_duplicates.phash_pairs(hashes[ok])
        best.append((time.process_time() - cpu, time.perf_counter() - wall))
    parts["search alone, best of 5"] = {"cpu": min(c for c, _ in best), "wall": min(w for _, w in best)}
    return {"pairs": len(pairs), "recall": hit / max(1, len(planted["near"])), "parts": _rounded(parts)}


def _stage_cv(root: Path, out: Path) -> dict:
    from tfft import data
    from tfft.config import load_config
    from tfft.studies import cv, duplicates

    parts = {"load_splits": _timed(data, "load_splits"), "duplicates": _timed(cv, "_duplicate_groups"),
             "- sha256": _timed(duplicates, "sha256_files"), "- phash": _timed(duplicates, "phash_hashes"),
             "- search": _timed(duplicates, "phash_pairs"), "- groups": _timed(duplicates, "groups"),
             "assign_folds": _timed(cv, "assign_folds")}
    plan = cv.plan_folds(load_config(_train_config(root)), 5)
    return {"groups": int(plan.num_groups), "parts": _rounded(parts)}


def run_stage(name: str, root: Path, out: Path) -> None:
    sys.path.insert(0, str(REPO))
    result = {"train": _stage_train, "near": _stage_near, "cv": _stage_cv}[name](root, out)
    print("BENCH " + json.dumps(result), flush=True)


# -- the parent: one process per stage, wall and CPU time, peak RSS ------------------------------


def measure(cmd: list[str], env: dict, timeout: float) -> dict:
    """Run `cmd`: wall and CPU seconds, the child's peak RSS (MiB), its BENCH result, exit status, load."""
    import threading

    load = os.getloadavg()[0]
    t0 = time.time()
    env = dict(env, BENCH_T0=repr(t0))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=REPO)
    out_lines: list[str] = []
    reader = threading.Thread(target=lambda: out_lines.extend(proc.stdout), daemon=True)
    reader.start()
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.time() > t0 + timeout:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            return {"wall": None, "timeout": timeout, "rss": usage.ru_maxrss / 1024}
        time.sleep(0.05)
    wall = time.time() - t0
    reader.join(5)
    text = "".join(out_lines)
    result = {}
    for line in text.splitlines():
        if line.startswith("BENCH "):
            result.update(json.loads(line[6:]))
    cpu = usage.ru_utime + usage.ru_stime
    if result.get("first_step_s") is not None:  # the train stages: up to the end of the first step
        wall, cpu = result["first_step_s"], result["first_step_cpu"]
    return {"wall": wall, "cpu": cpu, "rss": usage.ru_maxrss / 1024, "rc": os.waitstatus_to_exitcode(status),
            "load": [round(load, 1), round(os.getloadavg()[0], 1)], "result": result, "text": text}


def _missing_command(m: dict) -> bool:
    return m.get("rc") == 2 and ("No such command" in m["text"] or "No such option" in m["text"])


def _best(runs: list[dict]) -> dict:
    """The best wall and the best CPU seconds of the repeats, the largest peak RSS, every load."""
    done = [m for m in runs if m.get("wall") is not None]
    if not done:
        return runs[0]
    best = dict(min(done, key=lambda m: m["cpu"]))
    best.update(wall=min(m["wall"] for m in done), rss=max(m["rss"] for m in done), runs=len(done),
                load=[m["load"] for m in done], walls=[round(m["wall"], 2) for m in done],
                cpus=[round(m["cpu"], 2) for m in done])
    return best


def _commands(root: Path, work: Path, n: int) -> dict:
    py = [sys.executable]
    me = [*py, str(Path(__file__).resolve()), "--stage"]
    runs = work / f"runs-{n}"
    return {
        "train cold": lambda k: [*me, "train", str(root), str(runs / f"cold{k}")],
        "train warm": lambda k: [*me, "train", str(root), str(runs / f"warm{k}")],
        "data check": lambda k: [*py, "-m", "tfft", "data", "check", str(root), "--json"],
        "check --near-dup": lambda k: [*py, "-m", "tfft", "data", "check", str(root), "--near-duplicates", "--json"],
        "data pack": lambda k: [*py, "-m", "tfft", "data", "pack", str(root), "--out", str(work / f"pack-{n}")],
        "near-dup search": lambda k: [*me, "near", str(root), str(runs / "near")],
        "cv planning": lambda k: [*me, "cv", str(root), str(runs / "cv")],
    }


def bench_size(n: int, work: Path, timeout: float, only: tuple[str, ...] = (), repeat: int = 1,
               repeat_slow: int = 1) -> dict:
    root = work / f"n{n}"
    t = time.time()
    planted = generate(root, n)
    print(f"# N={n}: folder ready in {time.time() - t:.1f} s ({len(planted['exact'])} exact, "
          f"{len(planted['near'])} near duplicates planted)", flush=True)
    cache = work / f"cache-{n}"
    env = dict(os.environ, TFFT_CACHE_DIR=str(cache), PYTHONPATH=str(REPO))
    shutil.rmtree(work / f"runs-{n}", ignore_errors=True)
    rows = {}
    for stage, cmd in _commands(root, work, n).items():
        if only and stage not in only:
            continue
        runs = []
        for k in range(1 if stage in ONCE else repeat_slow if stage in SLOW else repeat):
            if stage == "train cold":
                shutil.rmtree(cache, ignore_errors=True)
            shutil.rmtree(work / f"pack-{n}", ignore_errors=True)
            m = measure(cmd(k), env, timeout)
            if _missing_command(m):
                m = {"wall": None, "na": True}
            runs.append(m)
            if m.get("rc") not in (None, 0) and not m.get("na"):
                print("\n".join(m["text"].splitlines()[-8:]), file=sys.stderr)
        rows[stage] = {k: v for k, v in _best(runs).items() if k != "text"}
        print(f"#   {stage}: {_cell(rows[stage])}  {_note(rows[stage])}", flush=True)
    shutil.rmtree(work / f"pack-{n}", ignore_errors=True)
    return rows


def _cell(m: dict) -> str:
    if m.get("na"):
        return "n/a"
    if m.get("wall") is None:
        return f">{m['timeout']:.0f} s"
    return f"{m['wall']:.1f} s wall, {m['cpu']:.1f} s CPU, {m['rss']:.0f} MiB"


def _note(m: dict) -> str:
    r = m.get("result") or {}
    bits = []
    if "images_opened" in r:
        bits.append(f"before training: {r['images_opened']} image files opened, {r['probes']} probes, "
                    f"{r['check_decodes']} check decodes")
    if "recall" in r:
        bits.append(f"{r['pairs']} pairs, recall {r['recall']:.3f}")
    if "groups" in r:
        bits.append(f"{r['groups']} groups")
    for name, part in (r.get("parts") or {}).items():
        bits.append(f"{name} {part['wall']:.2f} s wall / {part['cpu']:.2f} s CPU")
    if m.get("rc") not in (None, 0):
        bits.append(f"exit {m['rc']}")
    return "; ".join(bits)


def _series(table: dict, sizes: list[int]) -> dict[str, list]:
    """stage (and in-process part) -> [(wall, cpu) or None per size]."""
    out: dict[str, list] = {}
    for i, n in enumerate(sizes):
        for stage, m in table[n].items():
            rows = [(stage, m)] if m.get("wall") is not None else []
            rows += [(f"{stage}: {name}", part) for name, part in ((m.get("result") or {}).get("parts") or {}).items()]
            for name, v in rows:
                out.setdefault(name, [None] * len(sizes))[i] = (v["wall"], v["cpu"])
    return out


def _exponent(n1: int, t1, n2: int, t2) -> str:
    return f"{math.log(t2 / t1) / math.log(n2 / n1):.2f}" if t1 and t2 and t1 > 0 and t2 > 0 else "-"


def report(table: dict) -> None:
    """The rows (N, stage, wall, CPU, peak RSS, load), then exponents and 1M on paper per stage."""
    sizes = sorted(table)
    print("| N | stage | wall s | CPU s | peak RSS MiB | load avg (start, end) | notes |")
    print("|---:|---|---:|---:|---:|---|---|")
    for n in sizes:
        for stage, m in table[n].items():
            if m.get("na") or m.get("wall") is None:
                print(f"| {n:,} | {stage} | {_cell(m)} | | | | |")
                continue
            load = "; ".join(f"{a}-{b}" for a, b in m.get("load", [])) if isinstance(m.get("load", [None])[0], list) \
                else "-".join(map(str, m.get("load", [])))
            print(f"| {n:,} | {stage} | {m['wall']:.2f} | {m['cpu']:.2f} | {m['rss']:.0f} | {load} | {_note(m)} |")
    pairs = list(zip(sizes, sizes[1:])) + ([(sizes[0], sizes[-1])] if len(sizes) > 2 else [])
    print()
    print("| stage | " + " | ".join(f"exp {a:,}->{b:,} wall / CPU" for a, b in pairs)
          + " | 1M on paper: wall / CPU s |")
    print("|---|" + "---:|" * (len(pairs) + 1))
    for name, times in _series(table, sizes).items():
        cells = []
        index = {n: i for i, n in enumerate(sizes)}
        for a, b in pairs:
            ta, tb = times[index[a]], times[index[b]]
            cells.append(f"{_exponent(a, ta and ta[0], b, tb and tb[0])} / {_exponent(a, ta and ta[1], b, tb and tb[1])}")
        last, prev = times[-1], times[-2] if len(times) > 1 else None
        if last and prev:
            paper = [last[k] + max(0.0, (last[k] - prev[k]) / (sizes[-1] - sizes[-2])) * (1_000_000 - sizes[-1])
                     for k in (0, 1)]
            cells.append(f"{paper[0]:.0f} / {paper[1]:.0f}")
        else:
            cells.append("-")
        print(f"| {name} | " + " | ".join(cells) + " |")


def search_exponent(sizes: list[int], rounds: int) -> None:
    """The pHash search alone (`phash_pairs`) on N random hashes with N/100 planted near copies
    (`bench_duplicates.planted_hashes`), the sizes alternated `rounds` times in one process so that
    each meets the same load; the best CPU and wall seconds of each, and the exponents."""
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_duplicates import planted_hashes

    from tfft.data.near_duplicates import phash_pairs

    data = {n: planted_hashes(n) for n in sizes}
    best = {n: [math.inf, math.inf] for n in sizes}
    for _ in range(rounds):
        for n in sizes:
            wall, cpu = time.perf_counter(), time.process_time()
            i, j, _ = phash_pairs(data[n][0])
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            best[n] = [min(best[n][0], wall), min(best[n][1], cpu)]
            found = set(zip(i.tolist(), j.tolist()))
            assert data[n][1] <= found, "a planted pair was missed"
    print(f"load average {os.getloadavg()[0]:.1f}; best of {rounds}, every planted pair found")
    for n in sizes:
        print(f"N={n:,}: {best[n][0]:.4f} s wall, {best[n][1]:.4f} s CPU")
    for a, b in list(zip(sizes, sizes[1:])) + [(sizes[0], sizes[-1])]:
        print(f"exponent {a:,}->{b:,}: wall {_exponent(a, best[a][0], b, best[b][0])}, "
              f"CPU {_exponent(a, best[a][1], b, best[b][1])}")


def _merge(path: Optional[Path], table: dict) -> dict:
    """The figures already in `path` (JSON), updated with `table`'s sizes and stages, written back."""
    if path is None:
        return table
    merged = {int(n): rows for n, rows in json.loads(path.read_text()).items()} if path.is_file() else {}
    for n, rows in table.items():
        merged.setdefault(n, {}).update(rows)
    path.write_text(json.dumps({str(n): rows for n, rows in sorted(merged.items())}, indent=1))
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/tfft-scale"))
    parser.add_argument("--timeout", type=float, default=1800, help="seconds a stage may take")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each quick stage (best wall, best CPU kept)")
    parser.add_argument("--repeat-slow", type=int, default=1, help="runs of the train stages and of data pack")
    parser.add_argument("--only", nargs="+", default=(), choices=STAGES, metavar="STAGE",
                        help="run these stages alone (the cache folder, and so the index, is kept "
                             "unless 'train cold' runs)")
    parser.add_argument("--json", type=Path, help="merge the figures into this JSON file (and report them all)")
    parser.add_argument("--report-only", action="store_true", help="print the report of --json and stop")
    parser.add_argument("--search-only", type=int, metavar="ROUNDS",
                        help="time the pHash search alone on synthetic hashes of --sizes, alternated ROUNDS times")
    parser.add_argument("--stage", nargs=3, metavar=("NAME", "ROOT", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        run_stage(args.stage[0], Path(args.stage[1]), Path(args.stage[2]))
        return
    if args.search_only:
        search_exponent(args.sizes, args.search_only)
        return
    if args.report_only:
        report(_merge(args.json, {}))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    table = {}
    for n in args.sizes:  # the table so far after each size: a long run is useful before it ends
        table[n] = bench_size(n, args.work, args.timeout, tuple(args.only), args.repeat, args.repeat_slow)
        report(_merge(args.json, {n: table[n]}))


if __name__ == "__main__":
    main()
