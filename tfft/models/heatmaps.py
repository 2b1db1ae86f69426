"""Grad-CAM heatmaps: where a tfft model looks when it scores a class.

Grad-CAM (Selvaraju et al. 2017) weights each channel of the backbone's last spatial feature map
(the last 4-D output before pooling) by the mean gradient of the class's logit over it, sums the
channels, keeps the positive part, resizes the map bilinearly to the image and scales it to [0, 1].

A tfft classifier is a chain of layers (input, preprocessing, backbone, pooling, head); the
chain is run layer by layer so that the feature map and the logit come from one forward pass
whatever the backbone (nested as `backbone` or flat). An ensemble written by `tfft ensemble`
gets the mean of its members' heatmaps, each member scored on its own input size and on its
own index of the class.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import numpy as np

from tfft import compat
from tfft.errors import UserError
from tfft.task import LOGITS_LAYER
from tfft.wording import plural


@dataclass
class _Chain:
    """A classifier as the layers to run in order, the feature map's and the score's positions."""

    layers: list
    feature: int  # index into `layers` of the last 4-D output
    score: int  # index of the logits layer (the last layer when there is none)


@dataclass
class _Member:
    """One classifier inside a model: how the model's input reaches it and which class is which."""

    chain: _Chain
    prefix: Any  # a keras.Model from the outer input to this member's input, or None
    class_map: Optional[np.ndarray]  # model class index -> member class index, or None (identity)


def _parents(layer: Any) -> list[list[str]]:
    # Keras 3 keeps a layer's call sites as nodes (`_inbound_nodes`, no public accessor); each
    # node's parent nodes name the layers whose outputs it was called on.
    return [[p.operation.name for p in node.parent_nodes] for node in compat.inbound_nodes(layer)]


def _chain(model: Any) -> Optional[_Chain]:
    """The model as a chain of single-input layers, or None when it is not one."""
    import keras

    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if not layers or len(model.inputs) != 1:
        return None
    previous = model.layers[0].name
    for layer in layers:
        if _parents(layer)[-1:] != [[previous]]:
            return None
        previous = layer.name
    probe = np.zeros((1,) + tuple(int(d or 64) for d in model.input_shape[1:]), dtype=np.float32)
    x, feature = probe, None
    for index, layer in enumerate(layers):
        x = layer(x, training=False)
        if len(x.shape) == 4:
            feature = index
    if feature is None:
        raise UserError(model.name, "has no 4-D (spatial) feature map for Grad-CAM",
                        "heatmaps need a convolutional backbone (a [batch, height, width, channels] output)")
    names = [layer.name for layer in layers]
    score = names.index(LOGITS_LAYER) if LOGITS_LAYER in names else len(layers) - 1
    return _Chain(layers, feature, score)


def _members(model: Any) -> list[_Member]:
    """The classifiers to explain: the model itself, or each member of an ensemble."""
    import keras

    chain = _chain(model)
    if chain is not None:
        return [_Member(chain, None, None)]
    members = []
    for layer in model.layers:
        if not isinstance(layer, keras.Model) or (chain := _chain(layer)) is None:
            continue
        node = compat.inbound_nodes(layer)[-1]
        source = node.arguments.keras_tensors[0]
        prefix = None if source is model.inputs[0] else keras.Model(model.inputs, source)
        class_map = None
        consumers = [n.operation for n in compat.outbound_nodes(layer)]
        if len(consumers) == 1 and isinstance(consumers[0], keras.layers.Dense):
            # tfft ensemble's fixed 0/1 reorder: kernel[member class, model class]
            class_map = np.asarray(consumers[0].get_weights()[0]).argmax(axis=0)
        members.append((layer.name, _Member(chain, prefix, class_map)))
    if all(re.fullmatch(r"member_\d+", name) for name, _ in members):  # tfft ensemble: member_1, member_2...
        members.sort(key=lambda item: int(item[0].split("_")[1]))
    members = [m for _, m in members]
    if not members:
        raise UserError(model.name, "is neither a chain of layers (a tfft classifier) nor an ensemble of them",
                        "give a model.keras written by `tfft train` or `tfft ensemble`")
    return members


def _gradcam(chain: _Chain, images: Any, classes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Grad-CAM of one chain for one batch: float32 [B, size] in [0, 1]."""
    import tensorflow as tf

    x = tf.convert_to_tensor(images, tf.float32)
    with tf.GradientTape() as tape:
        feature = None
        for index, layer in enumerate(chain.layers[: chain.score + 1]):
            x = layer(x, training=False)
            if index == chain.feature:
                feature = x
                tape.watch(feature)
        score = tf.gather(tf.cast(x, tf.float32), tf.constant(classes, tf.int32), axis=1, batch_dims=1)
    grads = tf.cast(tape.gradient(score, feature), tf.float32)
    feature = tf.cast(feature, tf.float32)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * feature, axis=-1, keepdims=True))
    cam = tf.image.resize(cam, size, method="bilinear")[..., 0].numpy()
    top = cam.reshape(len(cam), -1).max(axis=1)
    return np.where(top[:, None, None] > 0, cam / np.maximum(top, 1e-12)[:, None, None], 0.0).astype(np.float32)


def heatmaps(model: Any, images: Any, class_index: Union[int, Sequence[int], None] = None,
             batch_size: int = 32, member: Optional[int] = None) -> np.ndarray:
    """Grad-CAM heatmaps of a tfft model: where it looks when it scores a class.

    The gradient of the class's logit (the `logits` layer; the output where there is none) with
    respect to the backbone's last spatial feature map weights that map's channels. Works on any
    `model.keras` that `tfft train` writes (backbone nested or flat) and on `tfft ensemble`
    models (the mean of the members' heatmaps).

    Args:
        model: a tfft `keras.Model` (raw 0-255 RGB in, probabilities out).
        images: raw 0-255 RGB, [N, H, W, 3]; resized (bilinear, antialiased) to the model's input
            when their size differs (pass them at its size to explain exactly the pixels it sees).
        class_index: the class to explain: one index for every image, one per image, or None
            for each image's predicted class.
        batch_size: images per forward and backward pass.
        member: for an ensemble, explain only its member K (1-based, ensemble.json's order);
            None: the mean of every member's map.

    Returns:
        float32 [N, H, W] in [0, 1] at the images' size (1 where the map peaks; all 0 where no location raises the
        class's score).

    Example:
    >>> import numpy as np, tfft
    >>> model = tfft.build_model({"model": {"backbone": "mobilenet_v3_small", "weights": None},
    ...                           "data": {"image_size": [32, 32]}}, num_classes=2)
    >>> maps = tfft.heatmaps(model, np.full((2, 32, 32, 3), 128.0))
    >>> maps.shape, maps.dtype.name, float(maps.min()) >= 0.0, float(maps.max()) <= 1.0
    ((2, 32, 32), 'float32', True, True)
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise UserError("images", f"expected [N, H, W, 3] raw RGB, got shape {images.shape}",
                        "stack the images into one array, 0-255 RGB")
    size = (int(images.shape[1]), int(images.shape[2]))
    model_size = tuple(int(d) if d else s for d, s in zip(model.input_shape[1:3], size))
    if model_size != size:  # the model sees them at its input size, the maps come back at theirs
        import tensorflow as tf

        images = tf.image.resize(images, model_size, method="bilinear", antialias=True).numpy()
    count = len(images)
    if class_index is None:
        classes = np.concatenate([np.asarray(model.predict_on_batch(images[i:i + batch_size])).argmax(axis=1)
                                  for i in range(0, count, batch_size)]) if count else np.zeros(0, np.int64)
    else:
        classes = np.broadcast_to(np.asarray(class_index, dtype=np.int64), (count,))
    outputs = int(model.output_shape[-1])
    if count and (classes.min() < 0 or classes.max() >= outputs):
        raise UserError("class_index", f"got {sorted(set(classes.tolist()))}, the model has {outputs} classes",
                        f"give indices 0..{outputs - 1} (labels.txt order)")
    members = _members(model)
    if member is not None:
        if not 1 <= int(member) <= len(members):
            raise UserError("member", f"got {member}, this model has {plural(len(members), 'member')}",
                            f"give 1..{len(members)}, or none for the mean of all")
        members = [members[int(member) - 1]]
    result = np.zeros((count,) + size, dtype=np.float32)
    for start in range(0, count, batch_size):
        batch, wanted = images[start:start + batch_size], classes[start:start + batch_size]
        total = np.zeros((len(batch),) + size, dtype=np.float32)
        for member in members:
            x = batch if member.prefix is None else np.asarray(member.prefix([batch], training=False))
            own = wanted if member.class_map is None else member.class_map[wanted]
            total += _gradcam(member.chain, x, own, size)
        top = total.reshape(len(total), -1).max(axis=1)
        result[start:start + len(batch)] = np.where(top[:, None, None] > 0,
                                                    total / np.maximum(top, 1e-12)[:, None, None], 0.0)
    return result


def overlay(image: Any, heatmap: Any, alpha: float = 0.45) -> np.ndarray:
    """An image (0-255 RGB) with its heatmap drawn over it in the `jet` colours, 0-255 float32.

    Example:
    >>> overlay(np.zeros((4, 4, 3)), np.ones((4, 4))).shape
    (4, 4, 3)
    """
    from matplotlib import colormaps

    colours = colormaps["jet"](np.clip(np.asarray(heatmap, np.float64), 0.0, 1.0))[..., :3] * 255.0
    return ((1.0 - alpha) * np.asarray(image, np.float64) + alpha * colours).astype(np.float32)
