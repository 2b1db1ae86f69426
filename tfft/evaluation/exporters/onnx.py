"""ONNX (tf2onnx), checked in ONNX Runtime in a subprocess without TensorFlow.

Input `image`: raw 0-255 RGB float32 NHWC (the rescaling is inside the graph, as in model.keras);
output: probabilities. Both quantizations first run ONNX Runtime's `quant_pre_process` (graph
optimisation and shape inference: batch norms folded, so the convolution weights quantized are the
ones that run). `dynamic` is `quantize_dynamic` (int8 weights, activations quantized per batch at
run time: ConvInteger, which ONNX Runtime runs slowly on CPUs); `int8` is `quantize_static` (QDQ,
int8 weights per channel in 7 bits (reduce_range), uint8 activations calibrated on ~100 training
images), which ONNX Runtime fuses into QLinearConv: the int8 to deploy a convnet with. The options
(QUANTIZE_OPTIONS) were chosen on a fine-tuned Lite0 (benchmarks/RESULTS.md) and are written into
the file's metadata (`tfft.quantization`).
"""

from __future__ import annotations

import json
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
# onnxruntime.quantization keyword arguments per quantization (enum members by name); chosen in
# benchmarks/RESULTS.md "ONNX quantization: what was tried"; `pre_process`: quant_pre_process first.
QUANTIZE_OPTIONS = {
    "dynamic": {"pre_process": True, "per_channel": False, "weight_type": "QInt8"},
    "int8": {"pre_process": True, "quant_format": "QDQ", "per_channel": True, "reduce_range": True,
             "weight_type": "QInt8", "activation_type": "QUInt8", "calibrate_method": "MinMax"},
}


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
    """ONNX Runtime's dynamic or static (QDQ, calibrated on `job.calibration()`) int8 quantization
    with QUANTIZE_OPTIONS[job.quantize], recorded in the file's metadata."""
    import onnx  # type: ignore[import-not-found]
    from onnxruntime import quantization  # type: ignore[import-not-found]
    from onnxruntime.quantization.shape_inference import quant_pre_process  # type: ignore[import-not-found]

    options = dict(QUANTIZE_OPTIONS[job.quantize])
    if options.pop("pre_process"):
        prepared = target.with_name(f"{target.name}.pre.tmp")
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        source = prepared
    enums = {"weight_type": quantization.QuantType, "activation_type": quantization.QuantType,
             "quant_format": quantization.QuantFormat, "calibrate_method": quantization.CalibrationMethod}
    kwargs = {key: getattr(enums[key], value) if key in enums else value for key, value in options.items()}
    if job.quantize == "dynamic":
        quantization.quantize_dynamic(str(source), str(target), **kwargs)
    else:
        images = job.calibration()

        class Reader(quantization.CalibrationDataReader):
            def __init__(self):
                self.batches = iter(images)

            def get_next(self):
                image = next(self.batches, None)
                return None if image is None else {"image": np.asarray(image, np.float32)[None]}

        quantization.quantize_static(str(source), str(target), Reader(), **kwargs)
    if source.name.endswith(".pre.tmp"):
        source.unlink()
    model = onnx.load(str(target))
    entry = model.metadata_props.add()
    entry.key, entry.value = "tfft.quantization", json.dumps({job.quantize: QUANTIZE_OPTIONS[job.quantize]})
    onnx.save(model, str(target))
