"""Making a finished run's model smaller for deployment: magnitude pruning (`tfft prune`).

Distillation, the other way to a smaller model, is part of a training run (`distill:` in the
config, `tfft.training.distill`); quantization is part of the export (`tfft export --quantize`).
"""

from tfft.compression.prune import PruneResult, prune

__all__ = ["PruneResult", "prune"]
