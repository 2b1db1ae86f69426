"""A batch as decoded, before the resize (`DecodedBatch`), and its resize (`resize_decoded`).

`tfft.data.pipeline` batches images as decoded and resizes each batch in one compiled call
(`resize_kernels.resize_batch`, bitwise `decode.resize`); `resize_decoded_tf` is the same resize
with TF's ops, image by image: the reference the compiled one is tested against.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import tensorflow as tf

from tfft.data import decode as _decode
from tfft.data import pyfunc as _pyfunc


class DecodedBatch(NamedTuple):
    """A batch as decoded, before the resize: what `resize_decoded` and an `on_decoded` step get.

    Image i is `raw[i, :h*w*3]` in HWC order with `(h, w, 3) = shapes[i]`, zero padded to the
    batch's longest image. An image whose decoded values would take more memory than the resized
    float32 image (h*w*3 > 4*H*W*3: a large PNG, say) is resized as it is decoded instead: its
    `shapes[i]` is (0, 0, 3) and it is `resized[i]` ([B, H*W*3], else [B, 0]). So a batch never
    holds more than twice its output's size. `resize_decoded` gives the images `decode.resize`
    gives; `tfft.augment.cpu_warp.resize_and_warp_batch` resizes and warps them in one call.
    """

    raw: Any
    shapes: Any
    resized: Any


def decoded_element(image, image_size: tuple[int, int], may_be_large: bool = True):
    """One image as decoded (uint8 [h, w, 3]) as a `DecodedBatch` element: (raw, shape, resized).

    `may_be_large=False` (the scan's headers say no image of the split decodes to more values than
    4x its resized self) leaves out the branch, which each fresh iterator pays to instantiate.
    """
    height, width = image_size

    def as_decoded():
        return tf.reshape(image, [-1]), tf.shape(image), tf.zeros([0], tf.float32)

    def resized():
        return tf.zeros([0], tf.uint8), tf.constant([0, 0, 3]), tf.reshape(_decode.resize(image, image_size), [-1])

    if not may_be_large:
        return as_decoded()
    return tf.cond(tf.size(image) > 4 * height * width * 3, resized, as_decoded)


def resize_decoded(decoded: DecodedBatch, image_size) -> tf.Tensor:
    """The images of a `DecodedBatch` resized as `decode.resize` does: float32 [B, H, W, 3].

    One compiled call for the batch (`resize_kernels.resize_batch`: TF's kernels' arithmetic in
    their order, bitwise `decode.resize`), written straight into the batch.

    Example:
    >>> image = tf.random.uniform([5, 7, 3], 0, 255, tf.int32)
    >>> decoded = DecodedBatch(tf.cast(tf.reshape(image, [1, -1]), tf.uint8), tf.constant([[5, 7, 3]]),
    ...                        tf.zeros([1, 0]))
    >>> resize_decoded(decoded, (8, 8)).shape
    TensorShape([1, 8, 8, 3])
    """
    size = (int(image_size[0]), int(image_size[1]))
    from tfft.data import resize_kernels as kernels  # on first use: importing numba takes a moment

    def run(raw, shapes, resized):
        out = _pyfunc.aligned_empty((shapes.shape[0], *size, 3))
        kernels.resize_batch(raw, shapes, resized, out)
        return out

    images = _pyfunc.numpy_function(run, [decoded.raw, decoded.shapes, decoded.resized], tf.float32)
    images.set_shape([decoded.shapes.shape[0], *size, 3])
    return images


def resize_decoded_tf(decoded: DecodedBatch, size: tuple[int, int]) -> tf.Tensor:
    """`resize_decoded` with TF's ops (`decode.resize`), image by image: the reference the compiled
    resize is tested against (tests/data/test_resize_kernels.py)."""

    def one(i):
        shape = decoded.shapes[i]
        return tf.cond(shape[0] > 0,
                       lambda: _decode.resize(tf.reshape(decoded.raw[i, :tf.reduce_prod(shape)], shape), size),
                       lambda: tf.reshape(decoded.resized[i], [*size, 3]))

    images = tf.map_fn(one, tf.range(tf.shape(decoded.shapes)[0]), fn_output_signature=tf.float32)
    images.set_shape([decoded.shapes.shape[0], *size, 3])
    return images


__all__ = ["DecodedBatch", "decoded_element", "resize_decoded", "resize_decoded_tf"]
