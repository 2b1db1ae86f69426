"""Class-activation heatmaps: where a tfft model looks when it scores a class.

The backbone's last spatial feature map (the last 4-D output before pooling, or a ViT-like
[batch, tokens, channels] sequence whose patch tokens form a square grid, after an optional class
token) has its channels weighted for the class (`tfft.models.cam`: Grad-CAM, Grad-CAM++ or
Score-CAM), summed, kept positive, upsampled to the image and scaled to [0, 1].

A tfft classifier is a chain of layers (input, preprocessing, backbone, pooling, head); the
chain is run layer by layer so that the feature map and the logit come from one forward pass
whatever the backbone (nested as `backbone` or flat). An ensemble written by `tfft ensemble`
gets the mean of its members' heatmaps, each member scored on its own input size and on its
own index of the class.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

import numpy as np

from tfft import compat
from tfft.errors import UserError
from tfft.models import cam as cams
from tfft.task import LOGITS_LAYER
from tfft.wording import plural


@dataclass
class _Chain:
    """A classifier as the layers to run in order, the feature map's and the score's positions."""

    layers: list
    feature: int  # index into `layers` of the last spatial output (4-D, or a square grid of tokens)
    score: int  # index of the logits layer (the last layer when there is none)
    centres: dict = field(default_factory=dict)  # image size -> (offset, stride) of the feature cells


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


def _token_grid(shape: Sequence[Any]) -> Optional[tuple[int, int]]:
    """(extra tokens, grid side) of a [batch, tokens, channels] output whose patch tokens form a
    square grid (tokens = side^2, or side^2 + 1 with a class token first); None otherwise."""
    if len(shape) != 3 or not shape[1]:
        return None
    for extra in (0, 1):
        side = math.isqrt(int(shape[1]) - extra)
        if side >= 2 and side * side == int(shape[1]) - extra:
            return extra, side
    return None


def _split_at(layers: list, name: str) -> Optional[tuple[list, int]]:
    """`layers` with the nested model holding layer `name` cut in two at that layer's output
    (the first part then ends on the feature map); None when no nested model holds it."""
    import keras

    for index, layer in enumerate(layers):
        if isinstance(layer, keras.Model) and name in [inner.name for inner in layer.layers]:
            inner = layer.get_layer(name)
            try:
                head = keras.Model(inner.output, layer.outputs, name=f"{layer.name}_after_{name}")
            except ValueError as error:
                raise UserError(f"layer={name!r}", f"the layers after it also read earlier outputs ({error})",
                                "choose a block's output (where a residual connection has joined)") from None
            return layers[:index] + [keras.Model(layer.inputs[0], inner.output, name=f"{layer.name}_to_{name}"),
                                     head] + layers[index + 1:], index
    return None


def _chain(model: Any, layer: Optional[str] = None) -> Optional[_Chain]:
    """The model as a chain of single-input layers, or None when it is not one.

    `layer`: the name of the layer whose output is the feature map (in the model or inside its
    nested backbone); None: the last spatial output."""
    import keras

    layers = [item for item in model.layers if not isinstance(item, keras.layers.InputLayer)]
    if not layers or len(model.inputs) != 1:
        return None
    previous = model.layers[0].name
    for item in layers:
        # any call site: a layer reused elsewhere after training (the feature cache's head model)
        # has a later node whose parent is another input
        if [previous] not in _parents(item):
            return None
        previous = item.name
    names = [item.name for item in layers]
    score = names.index(LOGITS_LAYER) if LOGITS_LAYER in names else len(layers) - 1
    chosen = None
    if layer is not None:
        split = None if layer in names else _split_at(layers, layer)
        if layer not in names and split is None:
            raise UserError(f"layer={layer!r}", f"no such layer in {model.name} or its backbone",
                            "give a layer name from model.summary() or model.get_layer('backbone').summary()")
        layers, chosen = split if split is not None else (layers, names.index(layer))
        score += split is not None
    probe = np.zeros((1,) + tuple(int(d or 64) for d in model.input_shape[1:]), dtype=np.float32)
    x, feature, spatial = probe, None, set()
    for index, item in enumerate(layers[: score + 1]):
        x = item(x, training=False)
        if len(x.shape) == 4 or _token_grid(x.shape) is not None:
            feature = index
            spatial.add(index)
    if chosen is not None and chosen not in spatial:
        raise UserError(f"layer={layer!r}", "its output is not spatial ([batch, height, width, channels] or a "
                        "square grid of tokens)", "give a convolution's or a block's output")
    feature = chosen if chosen is not None else feature
    if feature is None:
        raise UserError(model.name, "has no spatial feature map for a heatmap",
                        "heatmaps need a convolutional backbone (a [batch, height, width, channels] output) "
                        "or a token one ([batch, tokens, channels] with a square grid of patch tokens)")
    return _Chain(layers, feature, score)


def _members(model: Any, layer: Optional[str] = None) -> list[_Member]:
    """The classifiers to explain: the model itself, or each member of an ensemble."""
    import keras

    chain = _chain(model, layer)
    if chain is not None:
        return [_Member(chain, None, None)]
    members, layer_name = [], layer
    for layer in model.layers:
        if not isinstance(layer, keras.Model) or (chain := _chain(layer, layer_name)) is None:
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


def _as_grid(feature: Any) -> Any:
    """A feature map as [B, h, w, C] (a token sequence's patch tokens laid out on their grid)."""
    import tensorflow as tf

    grid = _token_grid(feature.shape) if len(feature.shape) == 3 else None
    if grid is None:
        return feature
    extra, side = grid
    return tf.reshape(feature[:, extra:], (-1, side, side, int(feature.shape[-1])))


def _cam(chain: _Chain, images: Any, classes: np.ndarray, size: tuple[int, int], method: str,
         upsampling: str) -> np.ndarray:
    """The heatmaps of one chain for one batch: float32 [B, size] in [0, 1]."""
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
    grads = None if method == "scorecam" else _as_grid(tf.cast(tape.gradient(score, feature), tf.float32))
    feature = _as_grid(tf.cast(feature, tf.float32))
    if method == "scorecam":
        def probabilities(batch: np.ndarray) -> np.ndarray:  # the logits: probabilities saturate
            out = tf.convert_to_tensor(batch)
            for layer in chain.layers[: chain.score + 1]:
                out = layer(out, training=False)
            return np.asarray(out, np.float32)

        weights = cams.scorecam_weights(feature.numpy(), np.asarray(images, np.float32), classes, probabilities)
    else:
        weights = cams.channel_weights(method, feature, grads)
    cam = tf.nn.relu(tf.reduce_sum(weights * feature, axis=-1)).numpy()
    offset = stride = None
    if upsampling == "aligned":
        seen = (int(images.shape[1]), int(images.shape[2]))
        if seen not in chain.centres:
            def run(batch: Any) -> Any:
                for layer in chain.layers[: chain.feature + 1]:
                    batch = layer(batch, training=False)
                return _as_grid(batch)

            chain.centres[seen] = cams.receptive_field_centres(run, seen)
        offset, stride = chain.centres[seen]
        scale = np.asarray(size) / np.asarray(seen)  # the maps come back at the caller's size
        offset, stride = (offset + 0.5) * scale - 0.5, stride * scale
    return cams.normalise(cams.upsample(cam, size, upsampling, offset, stride))


def heatmaps(model: Any, images: Any, class_index: Union[int, Sequence[int], None] = None,
             batch_size: int = 32, member: Optional[int] = None, method: str = cams.DEFAULT_METHOD,
             upsampling: str = cams.DEFAULT_UPSAMPLING, layer: Optional[str] = None) -> np.ndarray:
    """Class-activation heatmaps of a tfft model: where it looks when it scores a class.

    The backbone's last spatial feature map (or its patch tokens, laid out on their grid) has
    its channels weighted for the class's logit (the `logits` layer; the output where there is
    none). Works on any `model.keras` that `tfft train` writes (backbone nested or flat) and on
    `tfft ensemble` models (the mean of the members' heatmaps).

    Args:
        model: a tfft `keras.Model` (raw 0-255 RGB in, probabilities out).
        images: raw 0-255 RGB, [N, H, W, 3]; resized (bilinear, antialiased) to the model's input
            when their size differs (pass them at its size to explain exactly the pixels it sees).
        class_index: the class to explain: one index for every image, one per image, or None
            for each image's predicted class.
        batch_size: images per forward and backward pass.
        member: for an ensemble, explain only its member K (1-based, ensemble.json's order);
            None: the mean of every member's map.
        method: `gradcam`, `gradcam++` or `scorecam` (`tfft.models.cam`; benchmarks/RESULTS.md
            compares them).
        upsampling: `aligned` (each feature cell at its receptive field's centre) or `bilinear`.
        layer: the layer whose output is the feature map (in the model or its nested backbone),
            e.g. an earlier block's for a finer map; None: the last spatial output.

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
    for name, value, allowed in (("method", method, cams.METHODS), ("upsampling", upsampling, cams.UPSAMPLING)):
        if value not in allowed:
            raise UserError(name, f"got {value!r}", f"one of {', '.join(allowed)}")
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
    members = _members(model, layer)
    if member is not None:
        if not 1 <= int(member) <= len(members):
            raise UserError("member", f"got {member}, this model has {plural(len(members), 'member')}",
                            f"give 1..{len(members)}, or none for the mean of all")
        members = [members[int(member) - 1]]
    result = np.zeros((count,) + size, dtype=np.float32)
    for start in range(0, count, batch_size):
        batch, wanted = images[start:start + batch_size], classes[start:start + batch_size]
        total = np.zeros((len(batch),) + size, dtype=np.float32)
        for one in members:
            x = batch if one.prefix is None else np.asarray(one.prefix([batch], training=False))
            own = wanted if one.class_map is None else one.class_map[wanted]
            total += _cam(one.chain, x, own, size, method, upsampling)
        result[start:start + len(batch)] = cams.normalise(total)
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
