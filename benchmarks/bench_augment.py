"""Input-pipeline throughput: legacy ImageDataGenerator vs tf.data decode vs tfft's fused augmentation.

Run from the repo root:

    .venv/bin/python benchmarks/bench_augment.py [--data /work/shared/datasets/pets-mini] [--repeats 3]
        [--one-iterator] [--reencode 500x375]
    .venv/bin/python benchmarks/bench_augment.py --decoded-cache [--reencode 2016x1512] [--per-folder 100]

Recipe (the "seed" IDG recipe): rotation 40, width/height shift 0.2, shear 0.2, zoom 0.2,
horizontal_flip, fill_mode nearest; 224x224, batch 32, the train/ JPEGs of pets-mini, one
process. Rows:

(a) `keras.src.legacy.preprocessing.image.ImageDataGenerator(...).flow_from_directory`
(b) `tfft.data.make_dataset(..., training=True)`: decode, batch as decoded, resize each batch
    in one compiled call (bitwise `decode.resize`), no augmentation
(b0) `keras.utils.image_dataset_from_directory(...).prefetch(AUTOTUNE)`: the decode + resize
    users write today (Keras' transfer-learning guide: plain bilinear), for reference; the
    targets use (b)
(c) the same with tfft's augmentation as `tfft train` runs it in the pipeline: each batch as
    decoded (`tfft.data.DecodedBatch`) resized and warped in one compiled call
    (`Augmenter.decoded_warp`: `cpu_warp.resize_and_warp_batch`), the rest per batch
(c0) the same augmentation on (b)'s batches, with the batched XLA warp of model placement run
    in the pipeline (`augment_fn=augmenter`)
(d) augmentation alone on one decoded batch held in memory (the batched XLA warp)

With `--one-iterator`, a pass of (b), (b0), (c) or (c0) reads one epoch's batches from a single
iterator over back-to-back epochs, the way `tfft train` reads its data, instead of building a
fresh iterator per pass (which adds each pipeline's start-up and drain to every pass). In each
round that iterator is made and run for one epoch before the row's passes are timed and deleted
after them, untimed.

Each row: one warm-up pass, then `repeats` rounds; a round times 2 passes of every row in turn
(a, b, b0, c, c0, d, a, b, ...). The table gives the median rate of each row and, for the ratios,
the median of the per-round ratios (paired within a round, so a drift of this shared machine's
speed cancels).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

RECIPE = dict(rotation_range=40, width_shift_range=0.2, height_shift_range=0.2, shear_range=0.2,
              zoom_range=0.2, horizontal_flip=True, fill_mode="nearest")
SIZE, BATCH = (224, 224), 32


def _time_rounds(rows: dict, repeats: int, passes: int = 2) -> dict:
    """{name: (run_pass, images_per_pass)} -> {name: ([images/s wall], [images per CPU-second])}.

    One list entry per round; a round times every row in turn, so rows of one round saw the
    same machine. CPU time is this process's (all threads).
    """
    for run_pass, _ in rows.values():
        run_pass()  # warm-up (and compilation)
    rates: dict = {name: ([], []) for name in rows}
    for _ in range(repeats):
        for name, (run_pass, n) in rows.items():
            if isinstance(run_pass, _LongIterator):
                run_pass.start()
            start, cpu = time.perf_counter(), time.process_time()
            for _ in range(passes):
                run_pass()
            rates[name][0].append(passes * n / (time.perf_counter() - start))
            rates[name][1].append(passes * n / max(time.process_time() - cpu, 1e-9))
            if isinstance(run_pass, _LongIterator):
                run_pass.stop()
    return rates


def _ratio(rates: dict, row: str, base: str, i: int) -> float:
    """Median over rounds of row/base (wall: i=0, CPU: i=1): paired, so machine drift cancels."""
    return statistics.median(r / b for r, b in zip(rates[row][i], rates[base][i]))


def idg_pass(train_dir: Path):
    from keras.src.legacy.preprocessing.image import ImageDataGenerator

    warnings.filterwarnings("ignore")
    gen = ImageDataGenerator(**RECIPE)
    flow = gen.flow_from_directory(str(train_dir), target_size=SIZE, batch_size=BATCH,
                                   class_mode="sparse", seed=1)

    def one_pass():
        for i in range(len(flow)):
            flow[i]

    return one_pass, flow.n


class _LongIterator:
    """A pass reads `batches` (an epoch) from one iterator over back-to-back epochs.

    `start()`, untimed before a row's passes in a round, makes a fresh iterator and reads one epoch
    to get it going; `stop()`, untimed after them, deletes it, so no pipeline runs while another
    row is timed.
    """

    def __init__(self, ds, batches: int):
        self.ds, self.batches, self.it = ds, batches, None

    def start(self):
        self.it = iter(self.ds)
        self()

    def stop(self):
        self.it = None

    def __call__(self):
        if self.it is None:  # the warm-up pass, on an iterator of its own
            self.start()
            self.stop()
            return
        for _ in range(self.batches):
            next(self.it)


def _pass_over(ds, batches: int, one_iterator: bool):
    """A pass: a fresh iterator over `ds` (one epoch), or a `_LongIterator`'s next epoch."""
    if one_iterator:
        return _LongIterator(ds, batches)

    def one_pass():
        for _ in ds:
            pass

    return one_pass


def keras_pass(train_dir: Path, one_iterator: bool = False):
    import keras
    import tensorflow as tf

    files = keras.utils.image_dataset_from_directory(str(train_dir), image_size=SIZE, batch_size=BATCH, seed=1,
                                                     verbose=False)
    ds = (files.repeat() if one_iterator else files).prefetch(tf.data.AUTOTUNE)
    return _pass_over(ds, len(files), one_iterator), len(files.file_paths)  # the images Keras found


def tf_pass(data_dir: Path, augment: str, one_iterator: bool = False, fast_decode: str = "auto",
            decoded_cache=None):
    """augment: "none", "fused" (as `tfft train`: resize and warp in one call per batch as decoded) or
    "batched" (the resize, then the XLA warp on whole batches). fast_decode: `data.fast_decode`.
    decoded_cache: a `tfft.data.decoded_cache.DecodedCachePolicy` (None: off)."""
    from tfft import augment as tfft_augment
    from tfft import data as tfft_data
    from tfft.config import AugmentConfig, DataConfig

    data_cfg = DataConfig(source=str(data_dir), image_size=SIZE, batch_size=BATCH, fast_decode=fast_decode)
    splits = tfft_data.load_splits(data_cfg, seed=1)
    augmenter = (tfft_augment.build_augmenter(AugmentConfig(**RECIPE), SIZE, splits.num_classes)
                 if augment != "none" else None)
    if augment not in ("none", "fused", "batched"):
        raise ValueError(f"augment must be none, fused or batched, got {augment!r}")
    on_decoded, augment_fn = None, augmenter  # "batched": the whole augmenter on each batch
    if augment == "fused":
        on_decoded, augment_fn = augmenter.pipeline_steps()
    n = len(splits.splits["train"])
    epochs = range(0, 1000) if one_iterator else None  # back to back, as `tfft train` reads them
    ds = tfft_data.make_dataset(splits, "train", data_cfg, seed=1, training=True, epochs=epochs,
                                augment_fn=augment_fn, on_decoded=on_decoded, decoded_cache=decoded_cache)
    return _pass_over(ds, tfft_data.steps_per_epoch(splits, "train", BATCH), one_iterator), n


def augment_only_pass(data_dir: Path):
    import tensorflow as tf

    from tfft import augment as tfft_augment
    from tfft import data as tfft_data
    from tfft.config import AugmentConfig, DataConfig

    data_cfg = DataConfig(source=str(data_dir), image_size=SIZE, batch_size=BATCH)
    splits = tfft_data.load_splits(data_cfg, seed=1)
    images, labels = next(iter(tfft_data.make_dataset(splits, "train", data_cfg, seed=1, training=False)))
    augmenter = tfft_augment.build_augmenter(AugmentConfig(**RECIPE), SIZE, splits.num_classes)
    step = tf.function(lambda s: augmenter(images, labels, tf.stack([1, s]))[0])

    def twenty_five_batches():
        for s in range(25):
            step(tf.constant(s)).numpy()

    return twenty_five_batches, 25 * BATCH


def _reencoded(data: Path, size: str, cache: Optional[Path] = None, per_folder: Optional[int] = None) -> Path:
    """A copy of the JPEG folder `data` with every image resized to `size` ("WxH"; PIL bicubic,
    JPEG quality 90; "own": links to the files as they are): temporary (removed at exit), or kept
    in `cache` and reused when complete.
    `per_folder` keeps the first N files (sorted) of each folder."""
    import atexit
    import shutil
    import tempfile

    from PIL import Image

    width, height = (0, 0) if size == "own" else (int(v) for v in size.lower().split("x"))
    if cache is not None:
        out = Path(cache) / f"{data.name}_{width}x{height}_q90{'' if per_folder is None else f'_{per_folder}'}"
        if (out / ".complete").is_file():
            return out
    else:
        out = Path(tempfile.mkdtemp(prefix=f"bench_{width}x{height}_"))
        atexit.register(shutil.rmtree, out, ignore_errors=True)
    folders: dict = {}
    for path in sorted(data.rglob("*.jpg")):
        folders.setdefault(path.parent, []).append(path)
    for files in folders.values():
        for path in files[:per_folder]:
            target = out / path.relative_to(data)
            target.parent.mkdir(parents=True, exist_ok=True)
            if not width:  # their own size: a link to each file
                target.symlink_to(path.resolve())
                continue
            Image.open(path).convert("RGB").resize((width, height), Image.BICUBIC).save(target, quality=90)
    if cache is not None:
        (out / ".complete").write_text("")
    return out


def cache_rows(data: Path) -> dict:
    """The rows of the decoded-cache table: {key: (name, make) }, `make()` -> (a pass, images).

    Every pass is a fresh iterator over one epoch, built before the pass and not timed (what a
    phase builds once). (c-cache 1) releases the store first, so its pass decodes and fills it
    (a phase's first epoch); (c-cache 2+) is built once the store is full, as the later epochs of
    a phase read it (gathered, nothing decoded).
    """
    import bench_decode  # the plain decode + resize (n)

    from tfft.data import decoded_cache

    policy = decoded_cache.DecodedCachePolicy("auto")

    def filled():
        decoded_cache.release()
        return tf_pass(data, "fused", decoded_cache=policy)

    def gathered():
        if not any(store.complete for store in decoded_cache._CURRENT.values()):
            run_pass, _ = tf_pass(data, "fused", decoded_cache=policy)
            run_pass()
        return tf_pass(data, "fused", decoded_cache=policy)

    return {"a": ("(a) legacy ImageDataGenerator (seed recipe)", lambda: idg_pass(data / "train")),
            "n": ("(n) plain TF decode + resize (every pixel, antialiased), no augmentation",
                  lambda: bench_decode.naive_pass(data / "train", False)),
            "b": ("(b) tfft decode + resize, no augmentation", lambda: tf_pass(data, "none")),
            "c": ("(c) tfft augmented, no decoded cache (decoded every epoch)", lambda: tf_pass(data, "fused")),
            "c1": ("(c-cache 1) tfft augmented, decoded cache: the first epoch (decodes, fills)", filled),
            "c2": ("(c-cache 2+) tfft augmented, decoded cache: a later epoch (gathered)", gathered)}


def cache_table(data: Path, repeats: int, label: str) -> dict:
    """Print the decoded-cache table for `data` (a fresh iterator per epoch, best of `repeats`
    interleaved rounds: in a round every row runs once, in turn, so tfft and the plain decode share
    the machine's load) and return {key: best images/s}."""
    rows = cache_rows(data)
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    passes = {}
    for key, (_, make) in rows.items():  # one warm-up pass each (compilation), untimed
        run_pass, n = make()
        run_pass()
        passes[key] = n
    best = {key: 0.0 for key in rows}
    per_cpu = {key: 0.0 for key in rows}  # images per CPU-second of this process (all its threads)
    cpu_s = {key: [] for key in rows}  # CPU seconds of each timed pass
    walls = {key: [] for key in rows}
    for _ in range(repeats):
        for key, (_, make) in rows.items():
            run_pass, n = make()
            start, cpu = time.perf_counter(), time.process_time()
            run_pass()
            wall, used = time.perf_counter() - start, time.process_time() - cpu
            walls[key].append(wall)
            cpu_s[key].append(used)
            best[key] = max(best[key], n / wall)
            per_cpu[key] = max(per_cpu[key], n / max(used, 1e-9))
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"\n{label}: {passes['c']} train JPEGs -> {SIZE[0]}x{SIZE[1]}, batch {BATCH}, {os.cpu_count()} CPU cores "
          f"shared with other jobs (load average {load_start[0]:.1f} at the start, {load[0]:.1f} at the end, "
          f"15-min {load[2]:.1f}); a fresh iterator per epoch, best of {repeats} interleaved rounds\n")
    print("| pipeline | images/s | vs (a) | vs (n) | images per CPU-s | vs (a) | vs (n) | wall s a pass | CPU s a pass |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for key, (name, _) in rows.items():
        print(f"| {name} | {best[key]:.0f} | {best[key] / best['a']:.1f}x | {best[key] / best['n']:.2f}x | "
              f"{per_cpu[key]:.0f} | {per_cpu[key] / per_cpu['a']:.1f}x | {per_cpu[key] / per_cpu['n']:.2f}x | "
              f"{min(walls[key]):.2f} | {min(cpu_s[key]):.2f} |")
    for label, rate in (("wall", best), ("CPU", per_cpu)):
        later, first = rate["c2"], rate["c1"]
        print(f"goals ({label}, best of rounds): later epochs (c-cache 2+) vs (n) {later / rate['n']:.2f}x, vs (a) "
              f"{later / rate['a']:.1f}x; the first epoch (c-cache 1) vs today's (c) {first / rate['c']:.2f}x; "
              f"(c) vs (n) {rate['c'] / rate['n']:.2f}x, vs (a) {rate['c'] / rate['a']:.1f}x")
    paired = {pair: sorted(walls[pair[1]][i] / walls[pair[0]][i] for i in range(repeats))
              for pair in (("c2", "n"), ("c1", "c"), ("c2", "a"))}
    print("per-round speed ratios (paired in a round; a/b is b's wall time over a's: below 1, a is slower): " + "; ".join(
        f"{a}/{b} " + " ".join(f"{r:.2f}" for r in ratios) for (a, b), ratios in paired.items()))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/datasets/pets-mini"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one-iterator", action="store_true",
                        help="rows (b), (b0), (c), (c0): each pass reads one epoch from a single iterator over "
                             "back-to-back epochs (as `tfft train` does) instead of a fresh iterator per pass")
    parser.add_argument("--reencode", metavar="WxH",
                        help="time a copy of the data re-encoded at this size (PIL bicubic, JPEG quality 90), "
                             "e.g. 500x375, the size of the Oxford-IIIT Pet originals")
    parser.add_argument("--decoded-cache", action="store_true",
                        help="print the decoded-cache table instead: (a), (n), (b), (c) and tfft with the decoded "
                             "cache (first and later epochs), a fresh iterator per epoch, best of --repeats")
    parser.add_argument("--per-folder", type=int, default=None,
                        help="keep the first N images of each class folder (a copy in --cache)")
    parser.add_argument("--cache", default="/tmp/tfft-bench", help="where re-encoded copies are kept")
    args = parser.parse_args()
    if args.decoded_cache:
        size = args.reencode or "own"
        data = Path(args.data)
        if size != "own" or args.per_folder:
            data = _reencoded(data, size, Path(args.cache), args.per_folder)
        cache_table(data, args.repeats, data.name)
        return
    data = _reencoded(Path(args.data), args.reencode) if args.reencode else Path(args.data)
    import tensorflow as tf

    names = {"a": "(a) legacy ImageDataGenerator.flow_from_directory (seed recipe)",
             "b": "(b) tfft.data decode+resize, no augmentation",
             "b0": "(b0) keras.utils.image_dataset_from_directory decode+resize, no augmentation",
             "c": "(c) tfft.data decode + tfft.augment, resize and warp fused per batch (as `tfft train`)",
             "c0": "(c0) tfft.data decode+resize + tfft.augment, batched XLA warp",
             "d": "(d) tfft.augment alone, batched XLA warp, decoded batch in memory"}
    one = args.one_iterator
    rows = {"a": idg_pass(data / "train"), "b": tf_pass(data, "none", one), "b0": keras_pass(data / "train", one),
            "c": tf_pass(data, "fused", one), "c0": tf_pass(data, "batched", one), "d": augment_only_pass(data)}
    n = rows["b"][1]
    rates = _time_rounds(rows, args.repeats)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"pets-mini train: {n} JPEGs -> {SIZE[0]}x{SIZE[1]}, batch {BATCH}, "
          f"{os.cpu_count()} CPU cores (load average {load:.1f} at the end), TF {tf.__version__}; "
          f"{args.repeats} interleaved rounds of 2 passes: medians of the rates and of the per-round ratios"
          f"{'; one iterator per row over back-to-back epochs' if one else ''}\n")
    print("| pipeline | images/s (wall) | vs (a) | vs (b) | images per CPU-second | vs (a) | vs (b) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for key, name in names.items():
        wall, cpu = (statistics.median(v) for v in rates[key])
        print(f"| {name} | {wall:.0f} | {_ratio(rates, key, 'a', 0):.1f}x | {_ratio(rates, key, 'b', 0):.2f}x | "
              f"{cpu:.0f} | {_ratio(rates, key, 'a', 1):.1f}x | {_ratio(rates, key, 'b', 1):.2f}x |")
    print("\nper-round (c)/(b), wall:", " ".join(f"{c / b:.2f}" for c, b in zip(rates["c"][0], rates["b"][0])))
    for label, i in (("wall", 0), ("CPU", 1)):
        vs_a, vs_b = _ratio(rates, "c", "a", i), _ratio(rates, "c", "b", i)
        print(f"targets ({label}): (c) >= 5x (a): {'met' if vs_a >= 5 else 'NOT met'} ({vs_a:.1f}x); "
              f"(c) >= 0.5x (b): {'met' if vs_b >= 0.5 else 'NOT met'} ({vs_b:.2f}x); "
              f"for reference (c) vs (b0): {_ratio(rates, 'c', 'b0', i):.2f}x")

if __name__ == "__main__":
    main()
