"""Export formats as a registry: one `Exporter` subclass per format in `EXPORTERS`.

`savedmodel` (TF Serving, bytes in), `tflite` (LiteRT), `onnx` (ONNX Runtime) and `openvino`
(OpenVINO IR) register themselves here; `tfft export --format` offers `EXPORTERS.names()` and
`all`. A new format is a subclass registered with `EXPORTERS.register("name")` (see
docs/ARCHITECTURE.md).

Example:
>>> from tfft.evaluation.exporters import EXPORTERS
>>> EXPORTERS.names()
['savedmodel', 'tflite', 'onnx', 'openvino']
"""

from __future__ import annotations

# isort: off
# In this order (the CLI lists them so): each module registers its exporter when imported.
from tfft.evaluation.exporters import savedmodel, tflite, onnx, openvino  # noqa: F401
# isort: on
from tfft.evaluation.exporters.base import (
           EXPORTERS,
           Exporter,
           ExportJob,
           RuntimeCheck,
           installed_formats,
)
from tfft.evaluation.exporters.parity import (
           CLEAR_MARGIN,
           ExportResult,
           clear_agreement,
           compare,
           format_table,
)

__all__ = ["CLEAR_MARGIN", "EXPORTERS", "ExportJob", "ExportResult", "Exporter", "RuntimeCheck", "clear_agreement",
           "compare", "format_table", "installed_formats"]
