"""The first epoch with the decoded cache against today's uncached epoch: wall, CPU, page faults.

Run from the repo root:

    .venv/bin/python benchmarks/bench_first_epoch.py [--data /work/shared/datasets/pets-mini]
        [--stage full | decode] [--repeats 6] [--baseline main] [--fresh [--today REV]] [--rows c c1]

Rows, each a fresh iterator over one training epoch of the train/ photos (224x224, batch 32,
the seed recipe of `bench_augment`), built untimed, interleaved round by round:

(c) tfft augmented as `tfft train` runs it, no decoded cache (decoded every epoch)
(c1) the same with the decoded cache, the store released first: a phase's first epoch (decodes and fills)
(c1-base) (c1) with `tfft/data/decoded_cache.py` as it is at git revision `--baseline` (the store
    before a change), loaded from git into this process
(c-today) with `--fresh --today REV`: (c) as the whole package was at git revision REV (a
    checkout before the decoded cache existed: "today" when issue 34 was filed), in the same rounds

`--fresh` runs every pass in a process of its own, after one uncached warm-up pass there (the
compiled kernels, the allocator): a run's first epoch is always its process's first, so its
store's memory comes fresh from the kernel, where passes repeated in one process reuse the memory
the last store freed.

`--stage decode` times only the stream as decoded (no resize, no augmentation), where the store's
own cost stands out. Printed per row: medians and minima of wall and CPU seconds a pass (this
process, all threads), the CPU the kernel charged (sys), CPU/wall, the minor page faults a pass
(`ru_minflt`), and for every row the per-round ratios to (c) (paired in a round, so the load of
the moment cancels: above 1 is slower than (c)). A pass's wall time includes deleting its iterator
(as `model.fit` drops each epoch's); `to_end` stops at the stream's end, before the deletion,
which under TF's autotuner can wait seconds (`bench_iterator_stall.py`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
TREE_ENV = "TFFT_BENCH_TREE"  # set for a (c-today) pass: the checkout of `--today` to import tfft from
sys.path.insert(0, os.environ.get(TREE_ENV) or str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

SIZE, BATCH = (224, 224), 32
ROWS = ("c", "c1-base", "c1")


def baseline_store(revision: str):
    """`DecodedStore` of `tfft/data/decoded_cache.py` at git `revision`, as a module of its own."""
    root = Path(__file__).resolve().parents[1]
    text = subprocess.run(["git", "show", f"{revision}:tfft/data/decoded_cache.py"], cwd=root, check=True,
                          capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp(prefix="bench_first_epoch_")) / "decoded_cache_base.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("decoded_cache_base", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    base = module.DecodedStore
    if "expected_bytes" in base.__init__.__code__.co_varnames:
        return base

    def older(n, max_bytes, spill_dir=None, budget=None, expected_bytes=None):  # a store from before the estimate
        return base(n, max_bytes, spill_dir, budget=budget)

    return older


def make_rows(data: Path, stage: str, baseline: str) -> dict:
    """{row: make()}, `make()` -> a dataset over one epoch (the store released, for the cached rows)."""

    from bench_augment import RECIPE
    from tfft import augment as tfft_augment
    from tfft import data as tfft_data
    from tfft.config import AugmentConfig, DataConfig
    from tfft.data import decode, decoded_cache, pipeline, streams

    cfg = DataConfig(source=str(data), image_size=SIZE, batch_size=BATCH)
    splits = tfft_data.load_splits(cfg, seed=1)
    split, fast = splits.splits["train"], decode.fast_decode_on(cfg)
    augmenter = tfft_augment.build_augmenter(AugmentConfig(**RECIPE), SIZE, splits.num_classes)
    on_decoded, augment_fn = augmenter.pipeline_steps()
    policy = decoded_cache.DecodedCachePolicy("auto")
    stores = {"c1": decoded_cache.DecodedStore, "c1-base": baseline_store(baseline)}

    def make(row: str):
        decoded_cache.release()
        cache = None if row == "c" else policy
        current, decoded_cache.DecodedStore = decoded_cache.DecodedStore, stores.get(row, decoded_cache.DecodedStore)
        try:
            if stage == "full":
                return tfft_data.make_dataset(splits, "train", cfg, seed=1, training=True, augment_fn=augment_fn,
                                              on_decoded=on_decoded, decoded_cache=cache)
            decoder, _, may_be_large = splits.origin.element_decoder(split, SIZE, fast)
            store = decoded_cache.store_for(split, SIZE, fast, cache)
            ds = pipeline._phase_batches(split, decoder, may_be_large, SIZE, BATCH, 1, 0, 1, 0, store)
            return ds.prefetch(streams.PREFETCH).with_options(streams.options())
        finally:
            decoded_cache.DecodedStore = current

    return {row: (lambda row=row: make(row)) for row in ROWS}


def one_pass(ds) -> dict:
    """Wall, CPU (user, sys) seconds and minor page faults of one pass over a fresh iterator, its
    deletion included (as `model.fit` drops an epoch's iterator), and the wall seconds to its end
    alone (`to_end`: the last batch and the end of the stream, before the deletion)."""
    wall, cpu, usage = time.perf_counter(), os.times(), resource.getrusage(resource.RUSAGE_SELF)
    iterator = iter(ds)
    for _ in iterator:
        pass
    ended = time.perf_counter()
    del iterator
    end, cpu_end, usage_end = time.perf_counter(), os.times(), resource.getrusage(resource.RUSAGE_SELF)
    return {"wall": end - wall, "to_end": ended - wall,
            "cpu": (cpu_end.user - cpu.user) + (cpu_end.system - cpu.system),
            "sys": cpu_end.system - cpu.system, "faults": usage_end.ru_minflt - usage.ru_minflt}


def in_process(args) -> dict:
    """{row: [pass, ...]}: the rows' passes interleaved in this process, after one warm-up pass each."""
    rows = {row: make for row, make in make_rows(Path(args.data), args.stage, args.baseline).items()
            if row in args.rows}
    for make in rows.values():  # warm-up (compilation), untimed
        one_pass(make())
    passes: dict = {row: [] for row in rows}
    for _ in range(args.repeats):
        for row, make in rows.items():
            passes[row].append(one_pass(make()))
    return passes


def checkout(revision: str) -> str:
    """The package at git `revision`, extracted into a temporary folder (removed at exit)."""
    import atexit
    import shutil

    folder = tempfile.mkdtemp(prefix="bench_first_epoch_today_")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    root = Path(__file__).resolve().parents[1]
    archive = subprocess.run(["git", "archive", revision, "tfft"], cwd=root, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
    return folder


def fresh_processes(args) -> dict:
    """{row: [pass, ...]}: each pass in a process of its own, as a run's first epoch is."""
    rows = tuple(row for row in ROWS if row in args.rows) + (("c-today",) if args.today else ())
    today = checkout(args.today) if args.today else None
    passes: dict = {row: [] for row in rows}
    for _ in range(args.repeats):
        for row in rows:
            command = [sys.executable, __file__, "--data", args.data, "--stage", args.stage, "--baseline",
                       args.baseline, "--one", row]
            env = {**os.environ, TREE_ENV: today} if row == "c-today" else None
            out = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
            passes[row].append(json.loads(out.strip().splitlines()[-1]))
    return passes


def today_dataset(data: Path):
    """(c) with only what the package had before the decoded cache (a `--today` checkout's API)."""
    from bench_augment import RECIPE
    from tfft import augment as tfft_augment
    from tfft import data as tfft_data
    from tfft.config import AugmentConfig, DataConfig

    cfg = DataConfig(source=str(data), image_size=SIZE, batch_size=BATCH)
    splits = tfft_data.load_splits(cfg, seed=1)
    on_decoded, augment_fn = tfft_augment.build_augmenter(AugmentConfig(**RECIPE), SIZE,
                                                          splits.num_classes).pipeline_steps()
    return tfft_data.make_dataset(splits, "train", cfg, seed=1, training=True, augment_fn=augment_fn,
                                  on_decoded=on_decoded)


def one_in_this_process(args) -> None:
    """`--one ROW`: warm up with one uncached pass (compilation, the allocator), time ROW's pass, print it."""
    if args.one == "c-today":
        if args.stage != "full":
            raise SystemExit("--today compares whole pipelines: use it with --stage full")
        one_pass(today_dataset(Path(args.data)))
        print(json.dumps(one_pass(today_dataset(Path(args.data)))))
        return
    rows = make_rows(Path(args.data), args.stage, args.baseline)
    one_pass(rows["c"]())
    print(json.dumps(one_pass(rows[args.one]())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/datasets/pets-mini"))
    parser.add_argument("--stage", choices=("full", "decode"), default="full")
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--baseline", default="main", help="the git revision of the (c1-base) row's store")
    parser.add_argument("--fresh", action="store_true",
                        help="every pass in a fresh process (a run's first epoch), after one uncached warm-up pass")
    parser.add_argument("--today", help="with --fresh: add (c-today), the uncached pipeline at this git revision")
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS),
                        help="the rows to time ((c-today) comes with --today)")
    parser.add_argument("--one", choices=ROWS + ("c-today",), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return one_in_this_process(args)
    if args.today and not args.fresh:
        parser.error("--today needs --fresh (another checkout's package runs in processes of its own)")
    start_load = os.getloadavg()[0]
    passes = fresh_processes(args) if args.fresh else in_process(args)
    median = statistics.median
    print(f"{args.data}: stage {args.stage}, {args.repeats} interleaved rounds"
          f"{', each pass in a fresh process' if args.fresh else ''}, load average "
          f"{start_load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    for row, got in passes.items():
        wall, cpu = [p["wall"] for p in got], [p["cpu"] for p in got]
        print(f"({row}) wall s median {median(wall):.3f} min {min(wall):.3f} | CPU s median {median(cpu):.3f} "
              f"min {min(cpu):.3f} (sys {median(p['sys'] for p in got):.3f}) | CPU/wall {median(cpu) / median(wall):.2f}"
              f" | faults {median(p['faults'] for p in got):.0f}")
        print("    wall s (to the end), CPU s a pass in order: "
              + " ".join(f"{p['wall']:.2f} ({p['to_end']:.2f})/{p['cpu']:.2f}" for p in got))
        for base in ("c", "c-today"):
            if row == base or base not in passes or (base == "c-today" and row != "c1"):
                continue
            for key in ("wall", "to_end", "cpu"):
                ratios = sorted(p[key] / q[key] for p, q in zip(got, passes[base]))
                print(f"    {key} / ({base}) per round: " + " ".join(f"{r:.2f}" for r in ratios)
                      + f" | median {median(ratios):.3f}, slower in {sum(r > 1 for r in ratios)} of {len(ratios)}")


if __name__ == "__main__":
    main()
