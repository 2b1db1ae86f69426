"""ONNX (tf2onnx), checked in ONNX Runtime in a subprocess without TensorFlow.

Input `image`: raw 0-255 RGB float32 NHWC (the rescaling is inside the graph, as in model.keras);
output: probabilities. `dynamic` quantization is ONNX Runtime's `quantize_dynamic` (int8 weights,
activations quantized per batch at run time).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tfft.evaluation.exporters.base import EXPORTERS, Exporter, ExportJob, float32_function, replace

OPSET = 17


@EXPORTERS.register("onnx")
class OnnxExporter(Exporter):
    """ONNX via tf2onnx (opset 17); `dynamic`: int8 weights (onnxruntime.quantization)."""

    name = "onnx"
    extra = "onnx"
    file_name = "model.onnx"
    quantizations = ("none", "dynamic")
    modules = ("tensorflow", "tf2onnx", "onnx")
    runtime_modules = ("onnxruntime",)

    def export(self, model, path: Path, job: ExportJob) -> None:
        import tf2onnx  # type: ignore[import-not-found]

        fn, spec = float32_function(model, job.run.image_size)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            tf2onnx.convert.from_function(fn, input_signature=[spec], opset=OPSET, output_path=str(tmp))
            if job.quantize == "dynamic":
                from onnxruntime.quantization import QuantType, quantize_dynamic  # type: ignore[import-not-found]

                quantized = path.with_name(f".{path.name}.q.tmp")
                quantize_dynamic(str(tmp), str(quantized), weight_type=QuantType.QInt8)
                tmp.unlink()
                tmp = quantized
            replace(tmp, path)
        except BaseException:
            for leftover in path.parent.glob(f".{path.name}*.tmp"):
                shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink()
            raise
