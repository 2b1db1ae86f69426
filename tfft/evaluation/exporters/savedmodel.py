"""SavedModel for TF Serving: a `serving_default` signature on encoded image bytes.

The graph decodes and resizes each image exactly as training does (`tfft.data.files.decode_bytes`),
then returns `probabilities` and `label` (multi-label runs: every label at or above its threshold,
joined with a space). `assets/` holds labels.txt (and thresholds.json for multi-label runs).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from tfft.data.files import decode_bytes
from tfft import layout
from tfft.task import Task, task_for
from tfft.task.thresholds import thresholds_document
from tfft.evaluation.exporters.base import (
    EXPORTERS,
    LATENCY_RUNS,
    Exporter,
    ExportJob,
    RuntimeCheck,
    replace,
    temporary_folder,
)
from tfft.evaluation.exporters.runtime_check import median_latency_ms


def serving_module(model, class_names: list[str], image_size: tuple[int, int], thresholds: Any | None = None,
                   task: Task | None = None, fast_decode: bool = True):
    """The serving module; its `label` output is `task.serving_label` (single-label, the default:
    the top-1 class; multi-label: every label at or above its threshold, joined with a space);
    JPEGs decode as `data.fast_decode` says (`Run.fast_decode`)."""
    import tensorflow as tf

    rule = task or task_for()

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
            label = rule.serving_label(probabilities, self.labels, self.thresholds)
            return {"probabilities": probabilities, "label": label}

    return Serving()


@EXPORTERS.register("savedmodel")
class SavedModelExporter(Exporter):
    """TensorFlow SavedModel (TF Serving), encoded image bytes in; checked in TensorFlow (its runtime)."""

    name = "savedmodel"
    file_name = "savedmodel"
    modules = ("tensorflow",)
    is_folder = True
    inputs = "bytes"

    def export(self, model, path: Path, job: ExportJob) -> None:
        import tensorflow as tf

        run = job.run
        module = serving_module(model, run.class_names, run.image_size, job.thresholds, job.task,
                                fast_decode=run.fast_decode)
        tmp = temporary_folder(path)
        try:
            tf.saved_model.save(module, str(tmp), signatures={"serving_default": module.serve})
            (tmp / "assets").mkdir(exist_ok=True)
            (tmp / "assets" / "labels.txt").write_text("\n".join(run.class_names) + "\n", encoding="utf-8")
            if job.thresholds is not None:
                document = thresholds_document(run.class_names, job.thresholds)
                (tmp / "assets" / layout.THRESHOLDS).write_text(json.dumps(document, indent=2) + "\n",
                                                                               encoding="utf-8")
            replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def check(self, path: Path, inputs: list, threads: int) -> RuntimeCheck:
        """In this process (TensorFlow is the SavedModel's runtime), end to end: bytes in."""
        import tensorflow as tf

        fn = tf.saved_model.load(str(path)).signatures["serving_default"]

        def run(batch: list) -> np.ndarray:
            return fn(image_bytes=tf.constant(batch, dtype=tf.string))["probabilities"].numpy()

        probabilities = np.concatenate([run(inputs[i:i + 32]) for i in range(0, len(inputs), 32)])
        return RuntimeCheck(probabilities=probabilities, latency_ms=median_latency_ms(run, inputs[:1], LATENCY_RUNS),
                            runtime=f"tensorflow {tf.__version__}",
                            threads=tf.config.threading.get_intra_op_parallelism_threads() or _cpus(),
                            tensorflow_loaded=True)


def _cpus() -> int:
    import os

    return os.cpu_count() or 1
