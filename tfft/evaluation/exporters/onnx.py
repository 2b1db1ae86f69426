"""ONNX (tf2onnx), checked in ONNX Runtime in a subprocess without TensorFlow.

Input `image`: raw 0-255 RGB float32 NHWC (the rescaling is inside the graph, as in model.keras);
output: probabilities. `dynamic` quantization is ONNX Runtime's `quantize_dynamic` (int8 weights,
activations quantized per batch at run time: ConvInteger, which ONNX Runtime runs slowly on CPUs);
`int8` is `quantize_static` (QDQ, int8 weights per channel, uint8 activations calibrated on ~100
training images), which ONNX Runtime fuses into QLinearConv: the int8 to deploy a convnet with.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from tfft.evaluation.exporters.base import (
    EXPORTERS,
    Exporter,
    ExportJob,
    float32_function,
    replace,
)

OPSET = 17


@EXPORTERS.register("onnx")
class OnnxExporter(Exporter):
    """ONNX via tf2onnx (opset 17); `dynamic`: int8 weights, `int8`: static QDQ int8 (onnxruntime.quantization)."""

    name = "onnx"
    extra = "onnx"
    file_name = "model.onnx"
    quantizations = ("none", "dynamic", "int8")
    modules = ("tensorflow", "tf2onnx", "onnx")
    runtime_modules = ("onnxruntime",)

    def export(self, model, path: Path, job: ExportJob) -> None:
        import tf2onnx  # type: ignore[import-not-found]

        fn, spec = float32_function(model, job.run.image_size)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            tf2onnx.convert.from_function(fn, input_signature=[spec], opset=OPSET, output_path=str(tmp))
            if job.quantize != "none":
                quantized = path.with_name(f".{path.name}.q.tmp")
                _quantize(tmp, quantized, job)
                tmp.unlink()
                tmp = quantized
            replace(tmp, path)
        except BaseException:
            for leftover in path.parent.glob(f".{path.name}*.tmp"):
                shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink()
            raise


def _quantize(source: Path, target: Path, job: ExportJob) -> None:
    """ONNX Runtime's dynamic or static (QDQ, calibrated on `job.calibration()`) int8 quantization."""
    from onnxruntime.quantization import (  # type: ignore[import-not-found]
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    if job.quantize == "dynamic":
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
        return
    images = job.calibration()

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(images)

        def get_next(self):
            image = next(self.batches, None)
            return None if image is None else {"image": np.asarray(image, np.float32)[None]}

    quantize_static(str(source), str(target), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
