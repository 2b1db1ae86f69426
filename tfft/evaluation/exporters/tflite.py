"""TFLite (LiteRT) flatbuffers: raw 0-255 RGB float32 NHWC in, probabilities out, also when quantized.

int8 is full-integer quantization (weights and activations int8, calibrated on ~100 training
images) with float32 input and output kept; quantize/dequantize ops sit at the edges. Checked in
the LiteRT interpreter (`ai-edge-litert`) in a subprocess without TensorFlow, or in TensorFlow's
interpreter when ai-edge-litert is not installed.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np

from tfft.atomic import write_bytes
from tfft.backbones import with_dtype_policy
from tfft.errors import UserError
from tfft.evaluation.exporters.base import EXPORTERS, Exporter, ExportJob


@EXPORTERS.register("tflite")
class TFLiteExporter(Exporter):
    """TFLite / LiteRT: float, dynamic (int8 weights), float16 (weights) or int8 (full integer)."""

    name = "tflite"
    extra = "litert"
    file_name = "model.tflite"
    quantizations = ("none", "dynamic", "float16", "int8")
    modules = ("tensorflow",)

    def export(self, model, path: Path, job: ExportJob) -> None:
        import tensorflow as tf

        # from_keras_model freezes the weights into the flatbuffer (a plain concrete function keeps
        # Keras 3 variables as resources, which int8 calibration cannot read).
        # TFLite has no float16 / bfloat16 kernels for most ops: a mixed-precision model converts as
        # its float32 twin (the same weights), which `quantize: float16` may then shrink.
        converter = tf.lite.TFLiteConverter.from_keras_model(with_dtype_policy(model, "float32"))
        if job.quantize == "dynamic":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        elif job.quantize == "float16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif job.quantize == "int8":
            images = job.calibration()

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
            raise RuntimeError(f"TFLite conversion ({job.quantize}) failed: {type(exc).__name__}: {exc}") from exc
        if path.is_dir() and not path.is_symlink():  # only the default RUN_DIR/export/model.tflite gets here
            raise UserError(str(path), "is a folder; expected the .tflite file", "remove it or pass --out")
        write_bytes(path, data)
