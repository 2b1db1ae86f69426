"""Exports of a run's model.keras: a SavedModel that takes encoded image bytes, and TFLite.

Every export is checked against model.keras on validation images (top-1 agreement and the
largest absolute difference of probabilities), timed on one image, and ends with the line
`parity: top1 agreement A%, max abs diff D`.

TFLite int8 is full-integer quantization (weights and activations int8, calibrated on ~100
training images) with float32 input and output kept, so the .tflite takes the same raw 0-255 RGB
batch as model.keras and returns probabilities; quantize/dequantize ops sit at the edges.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from tfft.atomic import check_output, current_umask, write_bytes
from tfft.backbones import with_dtype_policy
from tfft.errors import UserError
from tfft.evaluation import multilabel_eval
from tfft.data.files import decode_bytes, read_images
from tfft.runs.directory import Run, is_multi_label, load_model, open_run, split_examples, split_files

FORMATS = ("savedmodel", "tflite", "onnx")
QUANTIZATIONS = ("none", "dynamic", "float16", "int8")
PARITY_IMAGES = 200
CALIBRATION_IMAGES = 100
LATENCY_RUNS = 20
# An image is "clear" when model.keras' top-1 probability leads the second by at least this much.
# Its decision can only flip if the export moves the two probabilities by half the margin each
# (0.05) the wrong way, several times the error of a faithful int8 export (a few 0.01); on the
# fence (a barely trained model's near-uniform outputs) any rounding flips it, which says nothing.
CLEAR_MARGIN = 0.1


@dataclass
class ExportResult:
    """What `export` wrote and measured."""

    path: str
    size_bytes: int
    latency_ms: float
    parity_top1: float  # % of validation images where the export's top-1 equals model.keras'
    parity_max_abs_diff: float
    format: str = "savedmodel"
    quantize: str = "none"
    parity_images: int = 0
    # Multi-label runs: % of images on which each label is decided (at its threshold) as model.keras decides it.
    parity_labels: Optional[dict[str, float]] = None
    # Single-label: top-1 agreement over the "clear" images (model.keras' top-1 margin >= CLEAR_MARGIN),
    # None when there was none, and how many they were.
    parity_clear_top1: Optional[float] = None
    parity_clear_images: int = 0

    def parity_line(self) -> str:
        """`parity: top1 agreement A%, max abs diff D` (the contract's last line), then for a
        single-label run `; clear images (top-1 margin >= 0.1) N/M: top1 agreement C%` (or `none`);
        a multi-label run adds `; label agreement NAME A%, ...` (decisions at the thresholds, per label)."""
        line = (f"parity: top1 agreement {self.parity_top1:.2f}%, "
                f"max abs diff {self.parity_max_abs_diff:.3g}")
        if self.parity_labels is None:
            clear = f"{self.parity_clear_images}/{self.parity_images}"
            line += (f"; clear images (top-1 margin >= {CLEAR_MARGIN:g}) {clear}: " +
                     (f"top1 agreement {self.parity_clear_top1:.2f}%" if self.parity_clear_top1 is not None
                      else "none"))
        if self.parity_labels:
            line += "; label agreement " + ", ".join(f"{name} {value:.2f}%" for name, value in self.parity_labels.items())
        return line

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def export(run_dir: str | os.PathLike, format: str = "savedmodel", quantize: str = "none",
           out: Optional[str | os.PathLike] = None, parity_images: int = PARITY_IMAGES,
           overwrite: bool = False) -> ExportResult:
    """Export a run's model.keras and check it against the original.

    Args:
        run_dir: a folder written by `tfft train`.
        format: "savedmodel" (serving signature on encoded image bytes), "tflite" (raw 0-255
            RGB float32 batch in, probabilities out) or "onnx" (needs tf2onnx).
        quantize: TFLite only: "none", "dynamic" (int8 weights), "float16" (float16 weights)
            or "int8" (full-integer, calibrated on training images; float32 I/O kept).
        out: where to write (default `RUN_DIR/export/savedmodel`, `RUN_DIR/export/model.tflite`,
            `RUN_DIR/export/model_<quantize>.tflite`). An existing folder given for a one-file
            format (tflite, onnx) gets the file under its default name.
        parity_images: at most this many validation images for the parity check.
        overwrite: write into an `out` that already holds files (or is or holds the run
            directory); only the export's own files are replaced, the others stay.

    Returns:
        An `ExportResult(path, size_bytes, latency_ms, parity_top1, parity_max_abs_diff)`.

    Raises:
        UserError: a missing run directory or model, an unknown format or quantization, ONNX
            without tf2onnx, or an `out` that exists, holds files or holds the run (without `overwrite`).

    Example:
    >>> result = export("runs/quickstart", format="tflite", quantize="int8")  # doctest: +SKIP
    >>> print(result.parity_line())  # doctest: +SKIP
    parity: top1 agreement 99.50%, max abs diff 0.0312
    """
    if format not in FORMATS:
        raise UserError("--format", f"expected one of {', '.join(FORMATS)}, got {format!r}")
    if quantize not in QUANTIZATIONS:
        raise UserError("--quantize", f"expected one of {', '.join(QUANTIZATIONS)}, got {quantize!r}")
    if format != "tflite" and quantize != "none":
        raise UserError("--quantize", f"quantization applies to --format tflite, got --format {format} "
                        f"with --quantize {quantize}", "drop --quantize or use --format tflite")
    run = open_run(run_dir)
    if format == "onnx":
        _require_tf2onnx()
    default_name = {"savedmodel": "savedmodel", "onnx": "model.onnx",
                    "tflite": "model.tflite" if quantize == "none" else f"model_{quantize}.tflite"}
    if out is None:
        path = run.run_dir / "export" / default_name[format]  # tfft's own folder: replaced freely
    else:
        path = check_output(out, overwrite=overwrite, file_name=None if format == "savedmodel" else default_name[format],
                            runs=[run.run_dir], own=[run.run_dir / "export"])
    path.parent.mkdir(parents=True, exist_ok=True)
    # builtin:/tfds: sources have no files: their parity and calibration images are written here, removed after.
    with tempfile.TemporaryDirectory(prefix="tfft-export-") as scratch:
        return _export(run, format, quantize, path, parity_images, Path(scratch))


def _export(run: Run, format: str, quantize: str, path: Path, parity_images: int, scratch: Path) -> ExportResult:
    """`export` once its arguments are checked and `path` chosen; `scratch` is a temporary folder."""
    model = load_model(run)
    val_paths, val_images = _parity_images(run, parity_images, scratch)
    thresholds = (multilabel_eval.read_run_thresholds(run.run_dir, run.class_names)
                  if is_multi_label(run) else None)
    if format == "savedmodel":
        _write_savedmodel(model, run, path, thresholds)
        runner = _savedmodel_runner(path)
        parity_inputs = [Path(p).read_bytes() for p in val_paths]  # end to end: bytes in
    elif format == "tflite":
        _write_tflite(model, run, quantize, path, scratch)
        runner = _tflite_runner(path)
        parity_inputs = val_images
    else:
        _write_onnx(model, run, path)
        runner = _onnx_runner(path)
        parity_inputs = val_images
    single = parity_inputs[:1]

    reference = _keras_probs(model, val_images)
    exported = np.concatenate([runner(parity_inputs[i:i + 32]) for i in range(0, len(parity_inputs), 32)])
    top1 = float((exported.argmax(axis=1) == reference.argmax(axis=1)).mean() * 100.0)
    max_diff = float(np.abs(exported.astype(np.float64) - reference).max())
    latency = _latency_ms(runner, single)
    per_label = (multilabel_eval.label_parity(exported, reference, thresholds, run.class_names)
                 if thresholds is not None else None)
    clear_top1, clear = clear_agreement(reference, exported)
    return ExportResult(path=str(path), size_bytes=_size(path), latency_ms=latency,
                        parity_top1=top1, parity_max_abs_diff=max_diff, format=format,
                        quantize=quantize, parity_images=len(val_paths), parity_labels=per_label,
                        parity_clear_top1=clear_top1, parity_clear_images=clear)


def clear_agreement(reference: np.ndarray, exported: np.ndarray, margin: float = CLEAR_MARGIN
                    ) -> tuple[Optional[float], int]:
    """Top-1 agreement (%) over the images whose reference top-1 probability leads the second by
    at least `margin`, and how many those were (None and 0 when none).

    Example:
    >>> ref = np.array([[0.9, 0.1], [0.52, 0.48], [0.2, 0.8]])
    >>> clear_agreement(ref, np.array([[0.8, 0.2], [0.45, 0.55], [0.6, 0.4]]))
    (50.0, 2)
    """
    ordered = np.sort(np.asarray(reference, np.float64), axis=1)
    if ordered.shape[1] < 2:
        return None, 0
    chosen = (ordered[:, -1] - ordered[:, -2]) >= margin
    count = int(chosen.sum())
    if not count:
        return None, 0
    agree = np.asarray(exported).argmax(axis=1)[chosen] == np.asarray(reference).argmax(axis=1)[chosen]
    return float(agree.mean() * 100.0), count


# --------------------------------------------------------------------------- data


def _generated_files(run: Run, split: str, limit: int, scratch: Path) -> list[str]:
    """For sources that are not files (builtin:, tfds:): up to `limit` images as lossless PNGs in
    a new folder inside `scratch` (the caller's temporary folder, removed by it)."""
    from PIL import Image

    from tfft import data as tfft_data

    splits = tfft_data.load_splits(run.config.data, run.config.seed)
    if split not in splits.splits or len(splits.splits[split]) == 0:
        raise UserError(str(run.config.data.source), f"no {split!r} split")
    folder = Path(tempfile.mkdtemp(prefix=f"{split}-", dir=scratch))
    paths: list[str] = []
    dataset = tfft_data.make_dataset(splits, split, run.config.data, seed=run.config.seed, training=False)
    for images, _ in dataset:
        for image in np.asarray(images):
            if len(paths) >= limit:
                return paths
            path = folder / f"{len(paths):05d}.png"
            Image.fromarray(np.clip(np.rint(image), 0, 255).astype(np.uint8)).save(path)
            paths.append(str(path))
    return paths


def _split_paths(run: Run, split: str, limit: int, scratch: Path) -> list[str]:
    if str(run.config.data.source).startswith(("builtin:", "tfds:")):
        return _generated_files(run, split, limit, scratch)
    if is_multi_label(run):
        return split_examples(run, split)[0]
    paths, _ = split_files(run, split)
    return paths


def _parity_images(run: Run, limit: int, scratch: Path) -> tuple[list[str], list[np.ndarray]]:
    """Up to `limit` validation images (every n-th file), decoded as in training."""
    for split in ("val", "test", "train"):
        try:
            paths = _split_paths(run, split, limit, scratch)
        except UserError:
            continue
        step = max(1, len(paths) // limit)
        good, images = read_images(paths[::step][:limit], run.image_size, fast_decode=run.fast_decode)
        if good:
            return good, images
    raise UserError(str(run.config.data.source), "no validation images to check parity on",
                    "the run's data.source must still exist where it was when training")


def _calibration_images(run: Run, scratch: Path, count: int = CALIBRATION_IMAGES) -> list[np.ndarray]:
    for split in ("train", "val"):
        try:
            paths = _split_paths(run, split, int(count * 1.2) + 1, scratch)
        except UserError:
            continue
        rng = np.random.default_rng(run.config.seed)
        order = rng.permutation(len(paths))[: int(count * 1.2) + 1]
        _, images = read_images([paths[int(i)] for i in order], run.image_size, fast_decode=run.fast_decode)
        if images:
            return images[:count]
    raise UserError(str(run.config.data.source), "no training images to calibrate int8 on",
                    "the run's data.source must still exist, or use --quantize dynamic")


def _keras_probs(model, images: list[np.ndarray]) -> np.ndarray:
    out = [np.asarray(model.predict_on_batch(np.stack(images[i:i + 32]).astype(np.float32)), np.float64)
           for i in range(0, len(images), 32)]
    return np.concatenate(out)


def _latency_ms(runner: Callable[[list], np.ndarray], single: list, runs: int = LATENCY_RUNS) -> float:
    runner(single)  # warm-up (tracing, allocation)
    runner(single)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        runner(single)
        times.append((time.perf_counter() - start) * 1000.0)
    return float(statistics.median(times))


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _replace(tmp: Path, path: Path) -> None:
    """Move a finished export into place: into an empty or missing `path` whole; into a folder that
    holds files entry by entry, replacing only the export's own entries (the others stay)."""
    if path.is_dir() and not path.is_symlink() and any(path.iterdir()):
        for entry in sorted(tmp.iterdir()):
            target = path / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            os.replace(entry, target)
        tmp.rmdir()
        return
    if path.is_dir() and not path.is_symlink():
        path.rmdir()
    elif path.exists() or path.is_symlink():
        path.unlink()
    os.replace(tmp, path)


# --------------------------------------------------------------------------- SavedModel


def _serving_module(model, class_names: list[str], image_size: tuple[int, int], thresholds: Optional[Any] = None,
                    fast_decode: bool = True):
    """The serving module; with `thresholds` (a multi-label run) `label` joins every label at or
    above its threshold with a space; JPEGs decode as `data.fast_decode` says (`Run.fast_decode`)."""
    import tensorflow as tf

    height, width = int(image_size[0]), int(image_size[1])

    class Serving(tf.Module):
        """Encoded image bytes in; probabilities and the top-1 label (multi-label: the labels) out."""

        def __init__(self):
            super().__init__(name="tfft_serving")
            self.model = model
            # Listed explicitly so tf.saved_model reaches every variable: behind a Resizing layer,
            # a nested model's Dropout seed state is otherwise "not reachable from root" (ensembles).
            self.model_variables = list(model.variables)
            self.labels = tf.constant(class_names, dtype=tf.string)
            self.thresholds = None if thresholds is None else tf.constant(np.asarray(thresholds, np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
        def serve(self, image_bytes):
            images = tf.map_fn(lambda data: decode_bytes(data, (height, width), fast_decode=fast_decode), image_bytes,
                               fn_output_signature=tf.TensorSpec([height, width, 3], tf.float32))
            probabilities = tf.cast(self.model(images, training=False), tf.float32)
            if self.thresholds is not None:
                label = multilabel_eval.joined_labels(probabilities, self.labels, self.thresholds)
            else:
                label = tf.gather(self.labels, tf.argmax(probabilities, axis=-1))
            return {"probabilities": probabilities, "label": label}

    return Serving()


def _write_savedmodel(model, run: Run, path: Path, thresholds: Optional[Any] = None) -> None:
    import tensorflow as tf

    module = _serving_module(model, run.class_names, run.image_size, thresholds, fast_decode=run.fast_decode)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp creates 0700; give the usual folder mode
    try:
        tf.saved_model.save(module, str(tmp), signatures={"serving_default": module.serve})
        (tmp / "assets").mkdir(exist_ok=True)
        (tmp / "assets" / "labels.txt").write_text("\n".join(run.class_names) + "\n", encoding="utf-8")
        if thresholds is not None:
            document = multilabel_eval.thresholds_document(run.class_names, thresholds)
            (tmp / "assets" / multilabel_eval.THRESHOLDS_FILE).write_text(json.dumps(document, indent=2) + "\n",
                                                                           encoding="utf-8")
        _replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _savedmodel_runner(path: Path) -> Callable[[list], np.ndarray]:
    import tensorflow as tf

    fn = tf.saved_model.load(str(path)).signatures["serving_default"]

    def run(batch: list) -> np.ndarray:
        return fn(image_bytes=tf.constant(batch, dtype=tf.string))["probabilities"].numpy()

    return run


# --------------------------------------------------------------------------- TFLite


def _write_tflite(model, run: Run, quantize: str, path: Path, scratch: Path) -> None:
    import tensorflow as tf

    # from_keras_model freezes the weights into the flatbuffer (a plain concrete function keeps
    # Keras 3 variables as resources, which int8 calibration cannot read).
    # TFLite has no float16 / bfloat16 kernels for most ops: a mixed-precision model converts as
    # its float32 twin (the same weights), which `quantize: float16` may then shrink.
    converter = tf.lite.TFLiteConverter.from_keras_model(with_dtype_policy(model, "float32"))
    if quantize == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        images = _calibration_images(run, scratch)

        def representative():
            for image in images:
                yield [image[None].astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        # inference_input_type / inference_output_type stay float32: the raw 0-255 input holds.
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # Keras prints its temporary export
            data = converter.convert()
    except Exception as exc:
        raise RuntimeError(f"TFLite conversion ({quantize}) failed: {type(exc).__name__}: {exc}") from exc
    if path.is_dir() and not path.is_symlink():  # only the default RUN_DIR/export/model.tflite gets here
        raise UserError(str(path), "is a folder; expected the .tflite file", "remove it or pass --out")
    write_bytes(path, data)


def _tflite_interpreter(path: Path):
    import tensorflow as tf

    try:
        from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-not-found]
    except ImportError:
        Interpreter = tf.lite.Interpreter
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        return Interpreter(model_path=str(path), num_threads=os.cpu_count() or 1)


def _tflite_runner(path: Path) -> Callable[[list], np.ndarray]:
    interpreter = _tflite_interpreter(path)
    state = {"batch": None}
    input_index = interpreter.get_input_details()[0]["index"]

    def run(batch: list) -> np.ndarray:
        x = np.stack(batch).astype(np.float32)
        if state["batch"] != len(x):
            interpreter.resize_tensor_input(input_index, list(x.shape), strict=False)
            interpreter.allocate_tensors()
            state["batch"] = len(x)
        interpreter.set_tensor(input_index, x)
        interpreter.invoke()
        return np.array(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]))

    return run


# --------------------------------------------------------------------------- ONNX


def _require_tf2onnx() -> None:
    try:
        import tf2onnx  # noqa: F401  # type: ignore[import-not-found]
    except ImportError:
        raise UserError("--format onnx", "ONNX export needs tf2onnx, which is not installed",
                        "pip install tf2onnx onnxruntime (tf2onnx 1.17, the latest, targets "
                        "TensorFlow <= 2.15 and pins protobuf 3.x, so it may not work with this "
                        "TensorFlow; --format savedmodel or tflite always works)") from None


def _write_onnx(model, run: Run, path: Path) -> None:
    import tensorflow as tf
    import tf2onnx  # type: ignore[import-not-found]

    height, width = run.image_size
    spec = (tf.TensorSpec([None, int(height), int(width), 3], tf.float32, name="image"),)
    fn = tf.function(lambda image: model(image, training=False))
    tmp = path.with_name(f".{path.name}.tmp")
    tf2onnx.convert.from_function(fn, input_signature=spec, opset=17, output_path=str(tmp))
    _replace(tmp, path)


def _onnx_runner(path: Path) -> Callable[[list], np.ndarray]:
    try:
        import onnxruntime  # type: ignore[import-not-found]
    except ImportError:
        raise UserError("--format onnx", "checking the ONNX export needs onnxruntime",
                        "pip install onnxruntime") from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(batch: list) -> np.ndarray:
        return np.asarray(session.run(None, {name: np.stack(batch).astype(np.float32)})[0])

    return run


__all__ = ["ExportResult", "export", "FORMATS", "QUANTIZATIONS"]
