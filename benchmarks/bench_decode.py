"""Camera-sized JPEGs: tfft's decode at reduced size (`data.fast_decode`) against decoding every pixel.

Run from the repo root:

    .venv/bin/python benchmarks/bench_decode.py --reencode 2016x1512 [--per-folder 64] [--repeats 3]
        [--one-iterator] [--cache ~/.cache/tfft-bench] [--data /work/shared/datasets/pets-mini]
    .venv/bin/python benchmarks/bench_decode.py --margins      # the quality study behind the margin
    .venv/bin/python benchmarks/bench_decode.py --reencode 2016x1512 --per-folder 200 --floor  # decoding alone

The data: a copy of pets-mini re-encoded at `--reencode WxH` (PIL bicubic, so upscaled from the
180 px originals, JPEG quality 90; `bench_augment._reencoded`), kept in `--cache` for the next run.
Each pass reads the train/ images at 224x224 in batches of 32. Rows:

(a) the legacy `ImageDataGenerator.flow_from_directory` with the seed recipe (`bench_augment`)
(n) the naive limit: TF decodes every pixel (`decode_jpeg`), then `tf.image.resize(antialias=True)`,
    in a parallel `tf.data` map, batched and prefetched; no augmentation
(c) tfft's augmented pipeline as `tfft train` runs it (`bench_augment.tf_pass(..., "fused")`),
    `data.fast_decode: auto` (the default)
(c-off) the same with `data.fast_decode: off` (every pixel decoded)

A pass is a fresh iterator over one epoch (what a training epoch costs with its start-up), or with
`--one-iterator` one epoch of a single long iterator. Rounds interleave the rows
(`bench_augment._time_rounds`); rates and ratios are medians (ratios paired within a round).
"pixels" is the mean absolute difference, in grey levels, of the unaugmented images tfft gives
(evaluate, predict, the SavedModel and training before augmentation all give these) against (n)'s.

`--margins` prints the study behind `decode.FAST_DECODE_MARGIN`: for each DCT reduction and each
slack (reduced size / target size), the mean absolute difference against a full decode plus
antialiased resize, on detailed pictures (mosaics of 63 pets-mini photos at their native
resolution, 1600x1200 and 1620x1260) and on upscaled ones (2016x1512).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_augment  # noqa: E402  (the shared rows, timing rounds and re-encoding)
from bench_augment import BATCH, SIZE  # noqa: E402


def naive_dataset(train_dir: Path, repeat: bool = False):
    """(n): every pixel decoded, then the antialiased resize; the files in a fixed order."""
    import tensorflow as tf

    files = sorted(str(p) for p in train_dir.rglob("*.jpg"))

    def load(path):
        image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
        return tf.image.resize(tf.cast(image, tf.float32), SIZE, method="bilinear", antialias=True)

    ds = tf.data.Dataset.from_tensor_slices(files)
    ds = (ds.repeat() if repeat else ds).map(load, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(BATCH).prefetch(tf.data.AUTOTUNE), files


def naive_pass(train_dir: Path, one_iterator: bool):
    ds, files = naive_dataset(train_dir, repeat=one_iterator)
    return bench_augment._pass_over(ds, -(-len(files) // BATCH), one_iterator), len(files)


def pixel_difference(data: Path, fast_decode: str) -> float:
    """Mean absolute difference of tfft's unaugmented images against (n)'s, over the train/ images."""
    import numpy as np

    from tfft import data as tfft_data
    from tfft.config import DataConfig

    cfg = DataConfig(source=str(data), image_size=SIZE, batch_size=BATCH, fast_decode=fast_decode)
    splits = tfft_data.load_splits(cfg, seed=1)
    ours = np.concatenate([x for x, _ in tfft_data.make_dataset(splits, "train", cfg, seed=1, training=False)
                           .as_numpy_iterator()])
    ds, files = naive_dataset(data / "train")
    reference = np.clip(np.concatenate(list(ds.as_numpy_iterator())), 0, 255)
    order = [str(p) for p in splits.splits["train"].paths]
    reference = reference[[files.index(p) for p in order]]
    return float(np.abs(ours - reference).mean())


def margins(data: Path) -> None:
    """The quality study: mean absolute difference against full decode + antialiased resize."""
    import numpy as np
    import tensorflow as tf
    from PIL import Image

    def encoded(image):
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        return buffer.getvalue()

    photos = sorted((data / "train").rglob("*.jpg"))
    rng = np.random.default_rng(0)

    def mosaic(width, height):
        canvas = Image.new("RGB", (width, height))
        for x in range(0, width, 180):
            for y in range(0, height, 180):
                canvas.paste(Image.open(photos[rng.integers(len(photos))]).convert("RGB"), (x, y))
        return encoded(canvas)

    sets = {"mosaic 1600x1200": [mosaic(1600, 1200) for _ in range(8)],
            "mosaic 1620x1260 (8 does not divide it)": [mosaic(1620, 1260) for _ in range(8)],
            "upscaled 2016x1512": [encoded(Image.open(p).convert("RGB").resize((2016, 1512), Image.BICUBIC))
                                   for p in photos[::80][:8]]}

    def resize(image, size, stored=None):
        image = tf.cast(image, tf.float32)[None]
        if stored is None:  # tf.image.resize's own scale: out / in
            out = tf.image.resize(image, size, method="bilinear", antialias=True)
        else:  # the scale a partial last block needs: out / (stored / r)
            out = tf.raw_ops.ScaleAndTranslate(images=image, size=size, scale=stored, translation=[0.0, 0.0],
                                               kernel_type="triangle", antialias=True)
        return np.clip(out[0].numpy(), 0, 255)

    print("| pictures | reduction | slack 1.0 | 1.25 | 1.5 | 2.0 | 3.0 |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    slacks = (1.0, 1.25, 1.5, 2.0, 3.0)
    for name, files in sets.items():
        full = [tf.io.decode_jpeg(d, channels=3) for d in files]
        accurate = [tf.io.decode_jpeg(d, channels=3, dct_method="INTEGER_ACCURATE") for d in files]
        floor = np.mean([np.abs(resize(a, (224, 224)) - resize(b, (224, 224))).mean() for a, b in zip(full, accurate)])
        print(f"| {name} | none: TF's fast IDCT vs its accurate one, at 224 | {floor:.2f} | | | | |")
        for r in (2, 4, 8):
            cells, exact = [], []
            for slack in slacks:
                errors, errors_exact = [], []
                for d, f in zip(files, full):
                    reduced = tf.io.decode_jpeg(d, channels=3, ratio=r)
                    height, width = int(f.shape[0]), int(f.shape[1])
                    size = (int(height / r / slack), int(width / r / slack))
                    reference = resize(f, size)
                    errors.append(np.abs(resize(reduced, size) - reference).mean())
                    scale = [size[0] * r / height, size[1] * r / width]
                    errors_exact.append(np.abs(resize(reduced, size, scale) - reference).mean())
                cells.append(f"{np.mean(errors):.2f}")
                exact.append(f"{np.mean(errors_exact):.2f}")
            print(f"| {name} | 1/{r} | " + " | ".join(cells) + " |")
            if "divide" in name:
                print(f"| {name} | 1/{r}, resized on the exact grid (scale {r}/stored) | " + " | ".join(exact) + " |")


def floor(data: Path, limit: int = 64) -> None:
    """Single-thread CPU cost of decoding alone, per DCT reduction: what no pipeline goes below.

    At 1/8 libjpeg computes only each block's DC term, so that row is close to the entropy
    (Huffman) decoding every reduction must still do; the legacy generator's cost per image is
    the yardstick of the "10x ImageDataGenerator" goal.
    """
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    files = sorted((data / "train").rglob("*.jpg"))[:limit]
    blobs = [tf.constant(path.read_bytes()) for path in files]
    print(f"\n{len(files)} JPEGs of {data.name}, one thread, median of 3 passes\n")
    print("| decode | ms CPU / image |")
    print("| --- | ---: |")
    for ratio in (1, 2, 4, 8):
        times = []
        for _ in range(3):
            start = time.process_time()
            for blob in blobs:
                tf.io.decode_jpeg(blob, channels=3, ratio=ratio)
            times.append((time.process_time() - start) / len(blobs))
        print(f"| tf.io.decode_jpeg, ratio={ratio} | {1000 * statistics.median(times):.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/datasets/pets-mini"))
    parser.add_argument("--reencode", metavar="WxH", default="2016x1512")
    parser.add_argument("--per-folder", type=int, default=None,
                        help="re-encode only the first N images of each class folder (camera sizes are slow to make)")
    parser.add_argument("--cache", default=str(Path.home() / ".cache" / "tfft-bench"),
                        help="where re-encoded copies are kept for the next run ('' for a temporary folder)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--passes", type=int, default=1, help="passes of each row per round")
    parser.add_argument("--one-iterator", action="store_true",
                        help="a pass reads one epoch of a single long iterator, not a fresh iterator")
    parser.add_argument("--margins", action="store_true", help="print the margin quality study and stop")
    parser.add_argument("--floor", action="store_true",
                        help="print the single-thread cost of decoding alone at each reduction and stop")
    args = parser.parse_args()
    if args.margins:
        margins(Path(args.data))
        return
    started = time.perf_counter()
    data = bench_augment._reencoded(Path(args.data), args.reencode, Path(args.cache) if args.cache else None,
                                    args.per_folder)
    print(f"data: {data} (ready after {time.perf_counter() - started:.0f} s)")
    if args.floor:
        floor(data)
        return
    import tensorflow as tf

    one = args.one_iterator
    rows = {"a": bench_augment.idg_pass(data / "train"), "n": naive_pass(data / "train", one),
            "c": bench_augment.tf_pass(data, "fused", one, fast_decode="auto"),
            "c-off": bench_augment.tf_pass(data, "fused", one, fast_decode="off")}
    names = {"a": "(a) legacy ImageDataGenerator (seed recipe)",
             "n": "(n) naive limit: TF decodes every pixel, antialiased resize, no augmentation",
             "c": "(c) tfft augmented pipeline, fast_decode: auto",
             "c-off": "(c-off) tfft augmented pipeline, fast_decode: off"}
    n = rows["c"][1]
    rates = bench_augment._time_rounds(rows, args.repeats, passes=args.passes)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    pixels = {"c": pixel_difference(data, "auto"), "c-off": pixel_difference(data, "off")}
    print(f"\n{args.reencode} copies of pets-mini train: {n} JPEGs -> {SIZE[0]}x{SIZE[1]}, batch {BATCH}, "
          f"{os.cpu_count()} CPU cores shared with other jobs (load average {load:.1f} at the end), "
          f"TF {tf.__version__}; {args.repeats} interleaved rounds of {args.passes} pass(es), "
          f"{'one long iterator' if one else 'a fresh iterator per pass'}; medians\n")
    print("| pipeline | images/s | vs (a) | vs (n) | ms CPU / image | pixels vs (n), mean abs |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for key, name in names.items():
        wall, per_cpu = (statistics.median(v) for v in rates[key])
        pixel = f"{pixels[key]:.2f}" if key in pixels else ""
        print(f"| {name} | {wall:.0f} | {bench_augment._ratio(rates, key, 'a', 0):.1f}x | "
              f"{bench_augment._ratio(rates, key, 'n', 0):.2f}x | {1000 / per_cpu:.2f} | {pixel} |")
    print("\nper-round (c)/(n), wall:", " ".join(f"{c / b:.2f}" for c, b in zip(rates["c"][0], rates["n"][0])))
    print("per-round (c)/(a), wall:", " ".join(f"{c / b:.1f}" for c, b in zip(rates["c"][0], rates["a"][0])))
    print("per-round (c)/(c-off), wall:", " ".join(f"{c / b:.2f}" for c, b in zip(rates["c"][0], rates["c-off"][0])))


if __name__ == "__main__":
    main()
