"""The warp on the CPU, for the `tf.data` pipeline: compiled numba loops, fused with the resize.

`geometry.warp` (an XLA gather) serves whole batches, on any device, inside models. In the input
pipeline `resize_and_warp_batch` instead takes a training batch as decoded (a
`tfft.data.DecodedBatch`) and, in one call, resizes each image into one reused scratch image and
warps that into the output batch. The resize is `decode.resize`'s, bitwise (TF's kernels'
arithmetic in their order, `tfft.data.resize_kernels`). The warp's arithmetic is
`geometry._gather_warp`'s, in two passes per output row: the sample coordinates, bilinear weights
and clamped offsets of the row (a loop LLVM vectorises), then 12 loads and 12 fused multiply-adds
a pixel; one compiled loop per fill mode. `fastmath={"contract"}` lets LLVM fuse multiply-adds as
XLA does. The two warps agree to the float32 rounding of the sample coordinates: max abs
difference about 2e-3 on 0-255 images (tests hold it under 0.01, all fill modes).
`warp_image` / `warp_batch` are the warp alone, on images already resized. Timings:
`benchmarks/bench_warp_kernel.py` (the loop alone) and `benchmarks/bench_augment.py` (the
pipelines), figures in `benchmarks/RESULTS.md`.

numba is a dependency of tfft; if it cannot be imported, these fall back to `decode.resize` and
the XLA warp (the same numbers to rounding, several times the CPU time).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfft.data import pyfunc

_MODES = {"nearest": 0, "constant": 1, "reflect": 2, "wrap": 3}


def _kernels():
    """The compiled loops (`tfft.augment.cpu_kernels`), imported on first use (numba takes a moment)."""
    from tfft.augment import cpu_kernels

    return cpu_kernels


def available() -> bool:
    """True when the compiled CPU loop can be used (numba importable)."""
    return _kernels() is not None


def _check(fill_mode: str, warped: tf.TensorShape) -> None:
    """Refuse what the loops cannot do: an unknown fill mode, warped images [..., H, W, C] that are
    not RGB or hold 2**31 values or more each (the loops' flat offsets are int32)."""
    if fill_mode not in _MODES:
        raise ValueError(f"fill_mode must be one of {sorted(_MODES)}, got {fill_mode!r}")
    if warped[-1] != 3:
        raise ValueError(f"the CPU warp takes RGB images [..., H, W, 3], got shape {warped}")
    if warped[-3:].num_elements() is not None and warped[-3:].num_elements() >= 2**31:
        raise ValueError(f"the CPU warp takes images of fewer than 2**31 values, got shape {warped}; "
                         "use geometry.warp(backend='xla') for larger ones")


def _warp(images: tf.Tensor, matrices: tf.Tensor, fill_mode: str, cval: float) -> tf.Tensor:
    """The loop over images [..., H, W, 3] with matrices [..., 3, 3] (one image or a batch)."""
    _check(fill_mode, images.shape)
    kernels, mode, fill = _kernels(), _MODES[fill_mode], np.float32(cval)
    kernel, matrices = kernels.warp, tf.cast(matrices, tf.float32)

    def run(src, mats):  # kept lean (TF hands over contiguous arrays)
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


def resize_and_warp_batch(decoded, matrices: tf.Tensor, image_size, fill_mode: str = "nearest",
                          cval: float = 0.0) -> tf.Tensor:
    """`warp_batch(tfft.data.resize_decoded(decoded, image_size), matrices, ...)` in one call.

    The input pipeline's geometric step: the batch as decoded goes into one compiled call that
    resizes each image exactly as `decode.resize` does (bitwise: TF's bilinear kernel when
    upscaling, its antialiased `ScaleAndTranslate` and the clip when a side shrinks; see
    `tfft.data.resize_kernels`) into one reused scratch image, and warps that into the batch.
    Against `resize_decoded` then `warp_batch`, the resized batch is never written out whole and
    one Python call is saved (`benchmarks/bench_augment.py`).

    Args:
        decoded: a `tfft.data.DecodedBatch`.
        matrices: [B, 3, 3] output-to-input matrices in the coordinates of the resized images.
        image_size: (height, width) to resize to.
        fill_mode: `nearest`, `constant`, `reflect` or `wrap`.
        cval: the fill value for `constant`.

    Returns:
        [B, height, width, 3] float32.

    Example:
    >>> from tfft.data import DecodedBatch, resize_decoded
    >>> image = tf.random.uniform([12, 10, 3], 0, 255, tf.int32)
    >>> decoded = DecodedBatch(tf.cast(tf.reshape(image, [1, -1]), tf.uint8), tf.constant([[12, 10, 3]]),
    ...                        tf.zeros([1, 0]))
    >>> y = resize_and_warp_batch(decoded, tf.eye(3, batch_shape=[1]), (16, 16))
    >>> bool(tf.reduce_all(y == resize_decoded(decoded, (16, 16))))
    True
    """
    size = (int(image_size[0]), int(image_size[1]))
    _check(fill_mode, tf.TensorShape([*size, 3]))
    kernels = _kernels()
    kernel, mode, fill = kernels.resize_warp_batch, _MODES[fill_mode], np.float32(cval)
    matrices = tf.cast(matrices, tf.float32)

    def run(raw, shapes, resized, mats):
        out = pyfunc.aligned_empty((shapes.shape[0], *size, 3))
        kernel(raw, shapes, resized, mats, mode, fill, out)
        return out

    out = pyfunc.numpy_function(run, [decoded.raw, decoded.shapes, decoded.resized,
                                      matrices / matrices[..., 2:3, 2:3]], tf.float32)
    out.set_shape([decoded.shapes.shape[0], *size, 3])
    return out


__all__ = ["available", "resize_and_warp_batch", "warp_batch", "warp_image"]
