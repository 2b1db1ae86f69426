"""Models: a backbone from the registry, the backbone's preprocessing inside, a pooling head."""

from tfft.models.build import build_classifier, resolve_backbone

__all__ = ["build_classifier", "resolve_backbone"]
