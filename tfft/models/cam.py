"""The class-activation maths behind `tfft.heatmaps`: channel weights and the map's upsampling.

Three ways to weight the channels of a feature map A [B, h, w, C] for a class score S:

- `gradcam` (Selvaraju et al. 2017): the mean over the map of dS/dA per channel.
- `gradcam++` (Chattopadhay et al. 2018): a per-location weighting of the positive gradients
  (closed form for an exponential score, from the first-order gradient only), which credits
  every region that raises the score, not only the largest.
- `scorecam` (Wang et al. 2020): no gradient; each channel, upsampled and scaled to [0, 1], masks
  the input and the class's probability on the masked image is the channel's weight. One forward
  pass per channel: the `SCORECAM_CHANNELS` channels with the largest spatial variance are used
  (Faster Score-CAM), so the cost stays bounded on 1280-channel backbones.

Upsampling: `bilinear` resizes the [h, w] map to the image as if cell i covered pixels
[i*s, (i+1)*s); `aligned` puts cell i at the centre of its receptive field (measured once per
model and image size from the gradient of a middle cell with respect to the input), which
corrects the shift that 'same' padding with strides puts there (1.5 px on a stride-4 map).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

METHODS = ("gradcam", "gradcam++", "scorecam")
UPSAMPLING = ("aligned", "bilinear")
DEFAULT_METHOD = "gradcam"  # benchmarks/RESULTS.md: the pointing game of each method
DEFAULT_UPSAMPLING = "aligned"
SCORECAM_CHANNELS = 64  # Score-CAM's forward passes per image (the channels of largest variance)


def channel_weights(method: str, feature: Any, grads: Any) -> Any:
    """[B, 1, 1, C] weights of the channels of `feature` [B, h, w, C] from dS/dA `grads` (Grad-CAM
    and Grad-CAM++; Score-CAM has its own `scorecam_weights`)."""
    import tensorflow as tf

    if method == "gradcam":
        return tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    # Grad-CAM++ with S = exp(score): second and third derivatives are powers of the first
    g2, g3 = grads ** 2, grads ** 3
    denominator = 2.0 * g2 + tf.reduce_sum(feature, axis=(1, 2), keepdims=True) * g3
    alpha = g2 / tf.where(tf.abs(denominator) > 1e-12, denominator, tf.ones_like(denominator))
    return tf.reduce_sum(alpha * tf.nn.relu(grads), axis=(1, 2), keepdims=True)


def scorecam_weights(feature: np.ndarray, inputs: np.ndarray, classes: np.ndarray,
                     probabilities: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """[B, 1, 1, C] Score-CAM weights: the class's probability on the input masked by each channel
    (the `SCORECAM_CHANNELS` of largest spatial variance; the others weigh 0)."""
    import tensorflow as tf

    batch, _, _, channels = feature.shape
    size = inputs.shape[1:3]
    weights = np.zeros((batch, 1, 1, channels), np.float32)
    keep = min(channels, SCORECAM_CHANNELS)
    for b in range(batch):
        chosen = np.argsort(-feature[b].reshape(-1, channels).var(axis=0), kind="stable")[:keep]
        maps = np.transpose(feature[b][..., chosen], (2, 0, 1))[..., None]  # [K, h, w, 1]
        masks = tf.image.resize(maps, size, method="bilinear").numpy()
        low = masks.min(axis=(1, 2, 3), keepdims=True)
        span = masks.max(axis=(1, 2, 3), keepdims=True) - low
        masks = np.where(span > 0, (masks - low) / np.maximum(span, 1e-12), 0.0)
        masked = np.concatenate([np.zeros_like(inputs[b][None]), inputs[b][None] * masks.astype(np.float32)])
        scores = probabilities(masked)[:, classes[b]]
        weights[b, 0, 0, chosen] = np.maximum(scores[1:] - scores[0], 0.0)  # over the black image's score
    return weights


def receptive_field_centres(run: Callable[[Any], Any], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(offset [2], stride [2]) in pixels: feature cell (i, j) is centred on offset + stride * (i, j).

    `run(x)` maps input images [B, H, W, 3] to the feature map [B, h, w, C]; the centre is the
    centroid of the squared input gradient of a middle cell (two random images)."""
    import tensorflow as tf

    x = tf.convert_to_tensor(np.random.default_rng(0).uniform(0, 255, (2,) + tuple(size) + (3,)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        feature = tf.cast(run(x), tf.float32)
        h, w = int(feature.shape[1]), int(feature.shape[2])
        cell = tf.reduce_sum(feature[:, h // 2, w // 2, :])
    grad = tape.gradient(cell, x)
    stride = np.asarray([size[0] / h, size[1] / w])
    weight = np.square(grad.numpy()).sum(axis=(0, 3)) if grad is not None else np.zeros(size)
    if weight.sum() <= 0:  # no gradient reaches the input: the geometric centres
        return (stride - 1) / 2, stride
    centre = np.asarray([(weight.sum(axis=1) * np.arange(size[0])).sum(),
                         (weight.sum(axis=0) * np.arange(size[1])).sum()]) / weight.sum()
    return centre - stride * np.asarray([h // 2, w // 2]), stride


def _interpolation(out: int, cells: int, offset: float, stride: float) -> np.ndarray:
    """[out, cells]: bilinear weights of the cells for each output pixel (edges clamped)."""
    u = np.clip((np.arange(out) - offset) / stride, 0, cells - 1)
    low = np.floor(u).astype(np.int64)
    high = np.minimum(low + 1, cells - 1)
    matrix = np.zeros((out, cells))
    np.add.at(matrix, (np.arange(out), low), 1 - (u - low))
    np.add.at(matrix, (np.arange(out), high), u - low)
    return matrix


def upsample(cam: np.ndarray, size: tuple[int, int], method: str, offset: Any = None, stride: Any = None) -> np.ndarray:
    """[B, h, w] maps to [B, size]: `bilinear` (half-pixel cells) or `aligned` (cells at their
    receptive fields' centres: `offset`, `stride` from `receptive_field_centres`).

    Example:
    >>> cell = np.zeros((1, 4, 4)); cell[0, 1, 2] = 1.0
    >>> up = upsample(cell, (16, 16), "aligned", offset=np.array([3.0, 3.0]), stride=np.array([4.0, 4.0]))
    >>> np.unravel_index(int(up[0].argmax()), (16, 16))  # 3 + 4 * (1, 2)
    (np.int64(7), np.int64(11))
    """
    import tensorflow as tf

    if method == "bilinear" or offset is None:
        return tf.image.resize(cam[..., None], size, method="bilinear")[..., 0].numpy()
    rows = _interpolation(size[0], cam.shape[1], offset[0], stride[0])
    cols = _interpolation(size[1], cam.shape[2], offset[1], stride[1])
    return np.einsum("yi,bij,xj->byx", rows, cam, cols)


def normalise(maps: np.ndarray) -> np.ndarray:
    """Each map scaled to peak at 1 (all-zero maps stay 0), float32.

    Example:
    >>> normalise(np.array([[[0.0, 2.0]], [[0.0, 0.0]]])).tolist()
    [[[0.0, 1.0]], [[0.0, 0.0]]]
    """
    top = maps.reshape(len(maps), -1).max(axis=1) if len(maps) else np.zeros(0)
    return np.where(top[:, None, None] > 0, maps / np.maximum(top, 1e-12)[:, None, None], 0.0).astype(np.float32)
