"""OpenVINO IR (`model.xml` + `model.bin` in a folder), checked in OpenVINO in a subprocess without TensorFlow.

Converted with `openvino.convert_model` from the model's tf.function (raw 0-255 RGB float32 NHWC
in, probabilities out). `int8` is NNCF post-training quantization calibrated on training images
(`nncf`, in the openvino extra).
"""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path
from typing import ClassVar

import numpy as np

from tfft.evaluation.exporters.base import (
    EXPORTERS,
    Exporter,
    ExportJob,
    float32_function,
    replace,
    temporary_folder,
)


@EXPORTERS.register("openvino")
class OpenVinoExporter(Exporter):
    """OpenVINO IR; `int8`: NNCF post-training quantization (calibrated on training images)."""

    name = "openvino"
    extra = "openvino"
    file_name = "openvino"
    quantizations = ("none", "int8")
    modules = ("tensorflow", "openvino")
    quantize_modules: ClassVar[dict[str, tuple[str, ...]]] = {"int8": ("nncf",)}
    is_folder = True

    def export(self, model, path: Path, job: ExportJob) -> None:
        import openvino as ov  # type: ignore[import-not-found]

        fn, spec = float32_function(model, job.run.image_size)
        converted = ov.convert_model(fn.get_concrete_function(spec))
        if job.quantize == "int8":
            import nncf  # type: ignore[import-not-found]

            images = job.calibration()
            dataset = nncf.Dataset(images, lambda image: np.asarray(image, np.float32)[None])
            # NNCF draws progress bars (rich) on stdout/stderr: kept out of the command's table.
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                converted = nncf.quantize(converted, dataset, subset_size=len(images))
        tmp = temporary_folder(path)
        try:
            # save_model compresses weights to float16 by default: kept float32 (parity within 1e-4)
            ov.save_model(converted, str(tmp / "model.xml"), compress_to_fp16=False)
            replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
