"""tfft.data: image sources, robust decoding and deterministic tf.data pipelines.

`load_splits` lists and scans a source (folder, CSV, TFDS, `builtin:shapes`) into `DataSplits`;
`make_dataset` turns a split into batched `(images float32 0..255, labels int32)` (the augmented
training batches of a config are the public API's `tfft.build_data`, which sits above
`tfft.augment`; `tfft.data.build` and `tfft.data.issues` are its deprecated old names);
`decode_and_resize` is the single decode+resize rule shared with evaluate, predict and export;
`check_folder` powers `tfft data check`; `iterative_stratification` / `iterative_kfold` split
multi-label data per label.

TensorFlow is imported only when a pipeline function is first used, so `import tfft.data` is cheap.
"""

from __future__ import annotations

from typing import Any

from tfft.data.check import check_folder
from tfft.data.decode import IMAGE_EXTENSIONS, is_image_file, pil_decode
from tfft.data.probe import Probe, probe_header, scan_files
from tfft.data.sources import SOURCES, DataSource, DataSplits, Split, data_report, load_splits, source_of
from tfft.data.stratify import iterative_kfold, iterative_stratification

_LAZY = {
    "make_dataset": "tfft.data.pipeline",
    "steps_per_epoch": "tfft.data.pipeline",
    "epoch_permutation": "tfft.data.pipeline",
    "augment_seed": "tfft.data.pipeline",
    "DecodedBatch": "tfft.data.decoded_batch",
    "resize_decoded": "tfft.data.decoded_batch",
    "decode_and_resize": "tfft.data.decode",
    "pack": "tfft.data.packing",  # `tfft.data.pack(source, out)`: TFRecord shards, read as tfrecord:DIR
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tfft.data' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [
    "DataSplits", "Split", "load_splits", "data_report", "make_dataset", "steps_per_epoch",
    "epoch_permutation", "augment_seed", "DecodedBatch", "resize_decoded", "decode_and_resize", "check_folder",
    "scan_files", "probe_header", "pil_decode", "is_image_file", "IMAGE_EXTENSIONS", "Probe",
    "iterative_stratification", "iterative_kfold", "SOURCES", "DataSource", "source_of", "pack",
]
