"""The CPU a fresh process spends building tfft's training and validation datasets and reading
their first batch (builtin:shapes, 32 px, flips and rotation), apart from importing TensorFlow:
what AutoGraph's conversion of the map functions cost (benchmarks/RESULTS.md, "AutoGraph").

Run from the repository root, once per checkout to compare, each in a fresh process:

    PYTHONPATH=$PWD python benchmarks/bench_pipeline_startup.py LABEL
"""
import resource, time, sys
t0=time.perf_counter(); r0=resource.getrusage(resource.RUSAGE_SELF)
import tensorflow as tf
from tfft.config import DataConfig, AugmentConfig
from tfft.data import load_splits, make_dataset
from tfft.augment import build_augmenter
r1=resource.getrusage(resource.RUSAGE_SELF)
cfg = DataConfig(source="builtin:shapes", image_size=(32, 32), batch_size=16, builtin_per_class=12)
splits = load_splits(cfg, seed=1, echo=False)
aug = build_augmenter(AugmentConfig(horizontal_flip=True, rotation_range=15), (32, 32), splits.num_classes)
on_decoded, augment_fn = aug.pipeline_steps()
ds = make_dataset(splits, "train", cfg, seed=1, training=True, epochs=range(0, 3), augment_fn=augment_fn, on_decoded=on_decoded)
v = make_dataset(splits, "val", cfg, seed=1, training=False)
next(iter(ds)); next(iter(v))
r2=resource.getrusage(resource.RUSAGE_SELF)
cpu=lambda a,b: (b.ru_utime-a.ru_utime)+(b.ru_stime-a.ru_stime)
print(f"{sys.argv[1]} import {cpu(r0,r1):.2f} build+first batch {cpu(r1,r2):.2f} CPU s")
