"""Stateless, batched augmentation with ImageDataGenerator's keywords and meanings.

`build_augmenter(cfg.augment, image_size, num_classes)` returns an `Augmenter` whose
`__call__(images, labels, seed)` depends only on its inputs and the [2] seed: every geometric
keyword is composed into ONE projective matrix per image and applied in one bilinear warp
(batched XLA in a model; in the input pipeline fused with the resize, on each batch as decoded,
through `Augmenter.decoded_warp` and the compiled loops of `cpu_warp`). `AugmentLayer` runs the
same augmenter inside a training model; `fit_statistics` and `standardization_layers` turn IDG's
featurewise/samplewise standardizations into built-in layers for the saved model; `preview_grid`
draws a PNG of augmented samples.
"""

from tfft.augment.augmenter import (
    AugmentLayer,
    Augmenter,
    batch_seed,
    build_augmenter,
    sample_shift,
    zoom_bounds,
)
from tfft.augment.geometry import affine_matrix, flip_matrix, idg_params_to_matrix, warp
from tfft.augment.preview import preview_grid
from tfft.augment.standardize import fit_statistics, samplewise_center_block, standardization_layers

__all__ = [
    "AugmentLayer",
    "Augmenter",
    "affine_matrix",
    "batch_seed",
    "build_augmenter",
    "fit_statistics",
    "flip_matrix",
    "idg_params_to_matrix",
    "preview_grid",
    "sample_shift",
    "samplewise_center_block",
    "standardization_layers",
    "warp",
    "zoom_bounds",
]
