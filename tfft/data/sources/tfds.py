"""`data.source: tfds:NAME[:VERSION][:SPLITS]`: a prepared TensorFlow Datasets dataset (never downloaded here)."""

from __future__ import annotations

import os
import re
from typing import Any, Optional

import numpy as np

from tfft.config import DataConfig
from tfft.data.rules import SPLIT_ALIASES, SPLIT_NAMES
from tfft.data.sources.base import SOURCES, DataSource, DataSplits, Split
from tfft.data.sources.split import stratified
from tfft.errors import UserError


@SOURCES.register("tfds")
class TfdsSource(DataSource):
    """A TFDS dataset, read as a stream (its examples have no files and no random access).

    Example:
    >>> TfdsSource("tfds:tf_flowers").has_files
    False
    """

    name = "tfds"
    prefix = "tfds:"
    has_files = False

    def load(self, data_cfg: DataConfig, seed: int, task: str = "auto") -> DataSplits:
        return _load_tfds(self.spec, data_cfg, seed)


def tfds_data_dir() -> str:
    """Where TFDS looks for prepared datasets: $TFDS_DATA_DIR or ~/tensorflow_datasets."""
    return os.path.expanduser(os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets")


def _tfds_offline_error(name: str, data_dir: str, detail: str = "") -> UserError:
    return UserError(
        "data.source",
        f"TFDS dataset {name!r} is not prepared in {data_dir}" + (f" ({detail})" if detail else "")
        + "; tfft never downloads datasets during training",
        f"on a machine with internet run `tfds build {name}` (or tfds.load('{name}')), then copy "
        f"its ~/tensorflow_datasets/{name.split('/')[0].split(':')[0]} folder into {data_dir}, "
        "or set TFDS_DATA_DIR to the folder that holds it")


def _load_tfds(source: str, data_cfg: DataConfig, seed: int) -> DataSplits:
    spec = source[len("tfds:"):]
    name, _, split_spec = spec.partition(":")
    version = re.match(r"^(\d+\.\d+\.\d+)(?::|$)", split_spec)
    if version:  # tfds:NAME:1.2.3[:SPLIT]
        name = f"{name}:{version.group(1)}"
        split_spec = split_spec[version.end():]
    if not name:
        raise UserError("data.source", f"expected tfds:NAME[:SPLIT], got {source!r}", "e.g. tfds:tf_flowers")
    data_dir = tfds_data_dir()
    folder = os.path.join(data_dir, name.split("/")[0].split(":")[0])
    # Check before touching tfds: building an unprepared dataset may try the network.
    if not os.path.isdir(folder) or not any(
            "dataset_info.json" in files for _, _, files in os.walk(folder)):
        raise _tfds_offline_error(name, data_dir)
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise UserError("data.source", "tensorflow_datasets is not installed",
                        "pip install tensorflow-datasets") from None
    try:
        builder = tfds.builder(name, data_dir=data_dir)
        info = builder.info
        if not os.path.isdir(str(builder.data_path)):
            raise FileNotFoundError(str(builder.data_path))
    except UserError:
        raise
    except Exception as exc:  # unknown name, version mismatch, ...
        raise _tfds_offline_error(name, data_dir, f"{type(exc).__name__}: {str(exc)[:200]}") from None
    image_key, label_key = "image", "label"
    if info.supervised_keys:
        keys = info.supervised_keys
        image_key, label_key = str(keys[0]), str(keys[1])
    try:
        class_names = list(info.features[label_key].names)
    except Exception:
        raise UserError("data.source", f"TFDS dataset {name!r} has no class-label feature {label_key!r}",
                        "use an image classification dataset such as tf_flowers") from None
    available = list(info.splits.keys())
    specs: dict[str, str] = {}
    carve: Optional[str] = None  # a TFDS split that val_split's stratified, seeded carve divides
    val_name = next((s for s in SPLIT_ALIASES["val"] if s in available), None)
    test_name = next((s for s in SPLIT_ALIASES["test"] if s in available), None)
    if split_spec:
        # tfds:NAME:TRAIN[,VAL[,TEST]] with TFDS split syntax, e.g. train[:80%],train[80%:]
        given = [part.strip() for part in split_spec.split(",") if part.strip()]
        specs = dict(zip(SPLIT_NAMES, given))
        if "val" not in specs and val_name is not None:
            specs["val"] = val_name
        elif "val" not in specs and data_cfg.val_split > 0 and "[" not in specs["train"]:
            carve = specs["train"]
    else:
        train_spec = "train" if "train" in available else available[0]
        if val_name is not None:
            specs["train"], specs["val"] = train_spec, val_name
        elif data_cfg.val_split > 0:
            specs["train"] = carve = train_spec
        else:
            specs["train"] = train_spec
        if test_name and test_name != train_spec:
            specs["test"] = test_name
    splits = {}
    for split_name, tspec in specs.items():
        try:
            n = int(info.splits[tspec].num_examples)
        except Exception as exc:
            raise UserError("data.source", f"bad TFDS split {tspec!r} for {name}: {exc}",
                            f"available splits: {available}; slicing like train[:80%] is allowed") from None
        splits[split_name] = Split(name=split_name, kind="tfds", num_examples=n,
                                   tfds={"builder": builder, "split": tspec, "image_key": image_key,
                                         "label_key": label_key})
    if carve is not None:
        splits.update(_carve_tfds(splits["train"], class_names, data_cfg.val_split, seed))
        splits = {name: splits[name] for name in SPLIT_NAMES if name in splits}
    return DataSplits(class_names=class_names, splits=splits, skipped=[], source=source, kind="tfds")


def _carve_tfds(whole: Split, class_names: list[str], val_split: float, seed: int) -> dict[str, Split]:
    """`whole` (a TFDS split) divided into train and val as a folder is: each class's examples
    in a permutation seeded by (seed, class), `val_split` of them to val (`stratified`).
    Reads the split's labels once (images left encoded)."""
    labels = tfds_labels(whole)
    per_class = {name: np.flatnonzero(labels == c).tolist() for c, name in enumerate(class_names)}
    parts = stratified(per_class, val_split, 0.0, seed)
    carved = {}
    for name in ("train", "val"):
        index = np.sort(np.asarray([i for items in parts[name].values() for i in items], dtype=np.int64))
        carved[name] = Split(name=name, kind="tfds", num_examples=len(index), labels=labels[index],
                             tfds={**whole.tfds, "indices": index})
    return carved


def tfds_examples(split: Split) -> Any:
    """A TFDS split's examples (images still encoded) in their stored order: the whole TFDS
    split, or the examples its `indices` (a val carve) keep."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    info = split.tfds
    ds = info["builder"].as_dataset(split=info["split"], shuffle_files=False,
                                    decoders={info["image_key"]: tfds.decode.SkipDecoding()})
    if info.get("indices") is None:
        return ds
    keep = np.zeros(int(info["builder"].info.splits[info["split"]].num_examples), dtype=bool)
    keep[info["indices"]] = True
    keep = tf.constant(keep)
    return ds.enumerate().filter(lambda i, example: tf.gather(keep, i)).map(lambda i, example: example)


def tfds_labels(split: Split) -> np.ndarray:
    label_key = split.tfds["label_key"]
    labels = [int(x) for x in tfds_examples(split).map(lambda ex: ex[label_key]).as_numpy_iterator()]
    return np.asarray(labels, dtype=np.int32)
