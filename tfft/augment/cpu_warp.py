"""The warp of one image on the CPU, for the `tf.data` pipeline: a compiled numba loop.

`geometry.warp` (an XLA gather) serves whole batches, on any device, inside models. In the input
pipeline the warp instead runs per image, right after that image is decoded and resized, while
it is still in the core's cache: `warp_image` below. Its arithmetic is `geometry._gather_warp`'s,
in two passes per output row: the sample coordinates, bilinear weights and clamped offsets of the
row (a loop LLVM vectorises), then 12 loads and 12 fused multiply-adds a pixel; one compiled
loop per fill mode. `fastmath={"contract"}` lets LLVM fuse multiply-adds as XLA does. The two
agree to the float32 rounding of the sample coordinates: max abs difference about 2e-3 on 0-255
images (tests hold it under 0.01, all fill modes). Measured on 224x224 RGB on this project's
2-core machine: about 0.3 ms an image for `nearest` (the XLA warp: about 1.3 ms of CPU an
image), see `benchmarks/bench_warp_kernel.py` and `benchmarks/bench_augment.py`.

numba is a dependency of tfft; if it cannot be imported, `warp_image` falls back to the XLA warp
of a batch of one (the same numbers to rounding, several times the CPU time).
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from tfft.data import pyfunc

_MODES = {"nearest": 0, "constant": 1, "reflect": 2, "wrap": 3}


@functools.lru_cache(maxsize=1)
def _kernel():
    """The compiled loop (compiled on first use, then cached on disk by numba), or None."""
    try:
        from tfft.augment import _cpu_kernels
    except ImportError:  # pragma: no cover - numba is a dependency
        return None
    return _cpu_kernels.warp


def available() -> bool:
    """True when the compiled CPU loop can be used (numba importable)."""
    return _kernel() is not None


def _warp(images: tf.Tensor, matrices: tf.Tensor, fill_mode: str, cval: float) -> tf.Tensor:
    """The loop over images [..., H, W, 3] with matrices [..., 3, 3] (one image or a batch)."""
    if fill_mode not in _MODES:
        raise ValueError(f"fill_mode must be one of {sorted(_MODES)}, got {fill_mode!r}")
    if images.shape[-1] != 3:
        raise ValueError(f"the CPU warp takes RGB images [..., H, W, 3], got shape {images.shape}")
    if images.shape[-3:].num_elements() is not None and images.shape[-3:].num_elements() >= 2**31:
        raise ValueError(f"the CPU warp takes images of fewer than 2**31 values, got shape {images.shape}; "
                         "use geometry.warp(backend='xla') for larger ones")
    kernel, mode, fill = _kernel(), _MODES[fill_mode], np.float32(cval)
    if kernel is None:  # pragma: no cover - numba is a dependency
        from tfft.augment import geometry

        if images.shape.rank == 3:
            return geometry.warp(images[None], matrices[None], fill_mode, cval)[0]
        return geometry.warp(images, matrices, fill_mode, cval)
    matrices = tf.cast(matrices, tf.float32)

    def run(src, mats):  # per image in the pipeline: kept lean (TF hands over contiguous arrays)
        out = np.empty(src.shape, np.float32)
        shape = src.shape[-3:]
        for image, m, dst in zip(src.reshape(-1, *shape), mats.reshape(-1, 3, 3), out.reshape(-1, *shape)):
            kernel(image, m, mode, fill, dst)
        return out

    out = pyfunc.numpy_function(run, [images, matrices / matrices[..., 2:3, 2:3]], tf.float32)
    out.set_shape(images.shape)
    return out


def warp_image(image: tf.Tensor, matrix: tf.Tensor, fill_mode: str = "nearest", cval: float = 0.0) -> tf.Tensor:
    """`geometry.warp` for ONE image, for a `tf.data` map on the CPU.

    Args:
        image: [H, W, 3] float32 (or uint8), raw 0-255.
        matrix: [3, 3] output-to-input matrix (see `geometry`).
        fill_mode: `nearest`, `constant`, `reflect` or `wrap` (IDG names, scipy semantics).
        cval: the fill value for `constant`.

    Returns:
        [H, W, 3] float32.

    Example:
    >>> x = tf.random.uniform([8, 8, 3], 0, 255)
    >>> bool(tf.reduce_all(warp_image(x, tf.eye(3)) == x))
    True
    """
    return _warp(image, matrix, fill_mode, cval)


def warp_batch(images: tf.Tensor, matrices: tf.Tensor, fill_mode: str = "nearest", cval: float = 0.0) -> tf.Tensor:
    """`warp_image` over a batch ([B, H, W, 3], [B, 3, 3]) in one call (`geometry.warp(backend="cpu")`).

    Example:
    >>> x = tf.random.uniform([2, 8, 8, 3], 0, 255)
    >>> bool(tf.reduce_all(warp_batch(x, tf.eye(3, batch_shape=[2])) == x))
    True
    """
    return _warp(images, matrices, fill_mode, cval)


__all__ = ["available", "warp_batch", "warp_image"]
