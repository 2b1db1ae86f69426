"""The stateless, batched augmenter built from `AugmentConfig`, and its Keras layer.

Order of operations (IDG's `apply_transform` order, then the modern policies):

1. one projective warp per image, composing in output-to-input order
   random_resized_crop @ IDG affine (rotation, shift, shear, zoom, about the centre)
   @ RandAugment geometric ops @ flips; bilinear, `fill_mode`/`cval` as IDG
   (skipped when nothing geometric is on; flips alone are a `tf.where(reverse)`); in the
   input pipeline fused with the resize, on each batch as decoded (`decoded_warp`), in a model
   batched;
2. `channel_shift_range`: one uniform intensity per image added to all channels, clipped to
   that image's min/max (IDG `apply_channel_shift`);
3. `brightness_range`: multiply by one uniform factor per image, clipped to 0..255 (IDG's PIL
   `ImageEnhance.Brightness`; IDG also rounds to integers, tfft does not);
4. color_jitter, RandAugment pixel ops, random_erasing (each clipped to 0..255);
5. MixUp / CutMix on (images, labels): labels become one-hot soft labels.

Values are clipped exactly where IDG clips (steps 2-3) and after each modern policy; the warp
itself needs no clipping (bilinear interpolation stays within the input range, apart from a
`constant` fill with a `cval` outside 0..255, which IDG does not clip either).

Randomness: `seed` ([2] int) is split into one seed for steps 1-4 and one for step 5, and the
first into a fixed slot per parameter, so turning one keyword on never changes the draws of
another. The output depends only on (images, labels, seed): the same in a `tf.data` map, in a
`tf.function`, and in `AugmentLayer` inside the training graph.
"""

from __future__ import annotations

import warnings
from typing import Callable, Optional, Union

import keras
import tensorflow as tf

from tfft.augment import cpu_warp, geometry, policies
from tfft.augment.policies import RNG_ALG
from tfft.config import AugmentConfig

# Fixed seed slots: never reorder (reordering changes every run's augmentation). The IDG
# geometric parameters and the flips are the columns of ONE [B, 10] uniform draw from slot
# "geometry" (one random op instead of ten: the pipeline samples these for every batch); slots
# 1-8 held one of them each before and stay empty, so the later slots keep their seeds.
_SLOTS = ("geometry", *(f"retired_{k}" for k in range(1, 9)), "channel_shift", "brightness",
          "random_resized_crop", "color_jitter", "rand_augment", "random_erasing", "spare")
_COLUMNS = ("theta", "tx", "tx_sign", "ty", "ty_sign", "shear", "zx", "zy", "flip_h", "flip_v")


def zoom_bounds(zoom_range: Union[float, tuple[float, float], list[float]]) -> tuple[float, float]:
    """IDG's reading of `zoom_range`: `z -> [1 - z, 1 + z]`, `[lo, hi]` as given."""
    if isinstance(zoom_range, (int, float)):
        return 1.0 - float(zoom_range), 1.0 + float(zoom_range)
    return float(zoom_range[0]), float(zoom_range[1])


def _enabled(spec) -> bool:
    if isinstance(spec, (list, tuple)):
        return len(spec) > 0
    return bool(spec)


def _draw(batch, geometry_seed) -> dict:
    """The columns of the one [B, 10] uniform draw behind the IDG geometry and flips."""
    u = policies.uniform([batch, len(_COLUMNS)], geometry_seed)
    return {name: u[:, i] for i, name in enumerate(_COLUMNS)}


def sample_shift(spec, size, u, u_sign) -> tf.Tensor:
    """[B] pixel shifts following IDG's `get_random_transform` rules for one shift keyword.

    `u` and `u_sign` are [B] uniform draws in [0, 1) (columns of the augmenter's one draw).

    * float: `U(-v, v)`; times `size` when `v < 1` (a fraction), pixels otherwise;
    * int (Python int, not float): `choice(range(v)) * choice([-1, 1])` pixels, as IDG's
      `np.random.choice(int)` does (0 included, v excluded);
    * list: `choice(values) * choice([-1, 1])`; times `size` when `max(values) < 1`.

    Example:
    >>> sample_shift(3, 32, tf.constant([0.0, 0.5, 0.99]), tf.constant([0.9, 0.1, 0.9])).numpy()
    array([ 0., -1.,  2.], dtype=float32)
    """
    if not _enabled(spec):
        return tf.zeros_like(u)
    sign = tf.where(u_sign < 0.5, -1.0, 1.0)

    def choice(count: int) -> tf.Tensor:  # uniform index in range(count)
        return tf.minimum(tf.floor(u * count), count - 1.0)

    if isinstance(spec, (list, tuple)):
        values = tf.constant([float(v) for v in spec], tf.float32)
        shift = tf.gather(values, tf.cast(choice(len(spec)), tf.int32)) * sign
        fraction = max(float(v) for v in spec) < 1
    elif isinstance(spec, int) and not isinstance(spec, bool):
        shift = choice(abs(spec)) * sign
        fraction = False
    else:
        v = abs(float(spec))
        shift = u * (2.0 * v) - v
        fraction = float(spec) < 1
    if fraction:
        shift = shift * tf.cast(size, tf.float32)
    return shift


class Augmenter:
    """A stateless batched augmenter; build it with `build_augmenter`.

    Args:
        cfg: the `augment` section.
        image_size: `(height, width)` the images have when augmented.
        num_classes: number of classes (for one-hot labels under MixUp/CutMix).

    Example:
    >>> from tfft.config import AugmentConfig
    >>> aug = Augmenter(AugmentConfig(rotation_range=20), (32, 32), 2)
    >>> x, y = aug(tf.zeros([4, 32, 32, 3]), tf.zeros([4], tf.int32), tf.constant([1, 2]))
    >>> x.shape
    TensorShape([4, 32, 32, 3])
    """

    def __init__(self, cfg: AugmentConfig, image_size: tuple[int, int], num_classes: int):
        self.cfg = cfg
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.num_classes = int(num_classes)
        self.zoom = zoom_bounds(cfg.zoom_range)
        self.geometric = bool(
            cfg.rotation_range or _enabled(cfg.width_shift_range) or _enabled(cfg.height_shift_range)
            or cfg.shear_range or self.zoom != (1.0, 1.0) or cfg.random_resized_crop
            or (cfg.rand_augment and cfg.rand_augment[0] > 0))
        self.flips = bool(cfg.horizontal_flip or cfg.vertical_flip)
        self.pixel = bool(cfg.channel_shift_range or cfg.brightness_range or cfg.color_jitter
                          or (cfg.rand_augment and cfg.rand_augment[0] > 0) or cfg.random_erasing)

    @property
    def needs_one_hot(self) -> bool:
        """True when MixUp or CutMix is on: labels come out one-hot (soft)."""
        return self.cfg.mixup > 0 or self.cfg.cutmix > 0

    @property
    def enabled(self) -> bool:
        return self.geometric or self.flips or self.pixel or self.needs_one_hot

    @property
    def flip_outcomes(self) -> list[tuple[bool, bool]]:
        """Every `(horizontal, vertical)` flip outcome, each equally likely, when flips are all
        this augmenter does (so a finite set of images covers it exactly); else `[]`.

        Example:
        >>> from tfft.config import AugmentConfig
        >>> Augmenter(AugmentConfig(horizontal_flip=True), (32, 32), 2).flip_outcomes
        [(False, False), (True, False)]
        >>> Augmenter(AugmentConfig(rotation_range=10), (32, 32), 2).flip_outcomes
        []
        """
        if not self.flips or self.geometric or self.pixel or self.needs_one_hot:
            return []
        horizontal = (False, True) if self.cfg.horizontal_flip else (False,)
        vertical = (False, True) if self.cfg.vertical_flip else (False,)
        return [(h, v) for v in vertical for h in horizontal]

    def describe(self) -> str:
        """One line for the console, e.g. `augment: rotation 40deg, shift w0.2 h0.2, ...`."""
        c = self.cfg
        parts = []
        if c.random_resized_crop:
            parts.append(f"random_resized_crop {list(c.random_resized_crop)}")
        if c.rotation_range:
            parts.append(f"rotation +-{c.rotation_range:g}deg")
        if _enabled(c.width_shift_range) or _enabled(c.height_shift_range):
            parts.append(f"shift w{c.width_shift_range} h{c.height_shift_range}")
        if c.shear_range:
            parts.append(f"shear +-{c.shear_range:g}deg")
        if self.zoom != (1.0, 1.0):
            parts.append(f"zoom [{self.zoom[0]:g}, {self.zoom[1]:g}]")
        if c.horizontal_flip:
            parts.append("hflip")
        if c.vertical_flip:
            parts.append("vflip")
        if c.channel_shift_range:
            parts.append(f"channel_shift +-{c.channel_shift_range:g}")
        if c.brightness_range:
            parts.append(f"brightness {list(c.brightness_range)}")
        if c.color_jitter:
            parts.append(f"color_jitter {c.color_jitter:g}")
        if c.rand_augment:
            parts.append(f"rand_augment N={c.rand_augment[0]} M={c.rand_augment[1]}")
        if c.random_erasing:
            parts.append(f"random_erasing p={c.random_erasing:g}")
        if c.mixup:
            parts.append(f"mixup {c.mixup:g}")
        if c.cutmix:
            parts.append(f"cutmix {c.cutmix:g}")
        warp = f"; 1 fused warp/image, fill {c.fill_mode}" if self.geometric else ""
        return f"augment: {', '.join(parts) or 'none'}{warp}; stateless, placement {c.placement}"

    # ------------------------------------------------------------------ sampling

    def sample_matrices(self, batch, height, width, seed) -> Optional[tf.Tensor]:
        """[B, 3, 3] output-to-input matrices of step 1 (None when nothing geometric is on).

        `batch` leads every random draw's shape, so the first k images get the same draws
        whatever the batch size (the matrices then agree to float rounding).
        """
        if not self.geometric:
            return None
        c = self.cfg
        s = dict(zip(_SLOTS, policies.split(seed, len(_SLOTS))))
        u = _draw(batch, s["geometry"])
        zeros, ones = tf.zeros([batch]), tf.ones([batch])
        r = float(c.rotation_range)
        theta = u["theta"] * (2.0 * r) - r if r else zeros
        tx = sample_shift(c.width_shift_range, width, u["tx"], u["tx_sign"])
        ty = sample_shift(c.height_shift_range, height, u["ty"], u["ty_sign"])
        shear = u["shear"] * (2.0 * c.shear_range) - c.shear_range if c.shear_range else zeros
        lo, hi = self.zoom
        zx, zy = ((ones, ones) if (lo, hi) == (1.0, 1.0)
                  else (lo + u["zx"] * (hi - lo), lo + u["zy"] * (hi - lo)))
        m = geometry.affine_matrix(theta, tx, ty, shear, zx, zy, height, width)
        if c.random_resized_crop:
            crop = policies.random_resized_crop_matrix(batch, height, width, c.random_resized_crop,
                                                       s["random_resized_crop"])
            m = crop @ m
        if c.rand_augment and c.rand_augment[0] > 0:
            plan = policies.rand_augment_plan(batch, c.rand_augment[0], c.rand_augment[1],
                                              s["rand_augment"])
            m = m @ policies.rand_augment_matrix(plan, height, width)
        if self.flips:
            fh, fv = self._flips(u)
            m = m @ geometry.flip_matrix(fh, fv, height, width)
        return m

    def _flips(self, u: dict) -> tuple[tf.Tensor, tf.Tensor]:
        false = tf.zeros_like(u["flip_h"], tf.bool)
        fh = u["flip_h"] < 0.5 if self.cfg.horizontal_flip else false
        fv = u["flip_v"] < 0.5 if self.cfg.vertical_flip else false
        return fh, fv

    def decoded_warp(self) -> Optional[Callable]:
        """Step 1 on a batch as decoded: `warp(decoded, seed) -> images`, for `make_dataset(on_decoded=)`.

        Resizes the images of a `tfft.data.DecodedBatch` to this augmenter's `image_size` (bitwise
        `decode.resize`) and warps them with the batch's matrices (`sample_matrices` from the
        seed, as `augment_images` draws them), in one compiled call
        (`cpu_warp.resize_and_warp_batch`), which agrees with the batched XLA warp to float32
        rounding. Then call this augmenter on the result with `warped=True`. None when nothing
        geometric is on (flips alone stay a batched reverse).

        Example:
        >>> from tfft.config import AugmentConfig
        >>> from tfft.data import DecodedBatch
        >>> warp = Augmenter(AugmentConfig(rotation_range=20), (16, 16), 2).decoded_warp()
        >>> decoded = DecodedBatch(tf.zeros([4, 8 * 8 * 3], tf.uint8), tf.constant([[8, 8, 3]] * 4), tf.zeros([4, 0]))
        >>> warp(decoded, tf.constant([1, 2])).shape
        TensorShape([4, 16, 16, 3])
        """
        if not self.geometric:
            return None
        height, width = self.image_size

        def warp(decoded, seed):
            seed_img, _ = policies.split(seed, 2)
            matrices = self.sample_matrices(tf.shape(decoded.shapes)[0], height, width, seed_img)
            return cpu_warp.resize_and_warp_batch(decoded, matrices, self.image_size, self.cfg.fill_mode,
                                                  self.cfg.cval)

        return warp

    def pipeline_steps(self) -> tuple[Optional[Callable], Callable]:
        """What the input pipeline runs: `(on_decoded, on_batch)` for `make_dataset`.

        `on_decoded` is `decoded_warp()` (None when nothing geometric is on); `on_batch(images,
        labels, seed)` is this augmenter with `warped=True` exactly when `on_decoded` is used.

        Example:
        >>> from tfft.config import AugmentConfig
        >>> on_decoded, on_batch = Augmenter(AugmentConfig(rotation_range=20), (16, 16), 2).pipeline_steps()
        >>> on_decoded is not None
        True
        """
        on_decoded = self.decoded_warp()

        def on_batch(images, labels, seed):
            return self(images, labels, seed, warped=on_decoded is not None)

        return on_decoded, on_batch

    # ------------------------------------------------------------------ applying

    def augment_images(self, images: tf.Tensor, seed, warped: bool = False) -> tf.Tensor:
        """Steps 1-4 (everything but MixUp/CutMix): images float32 [B, H, W, 3] 0..255.

        `warped=True`: step 1 was already applied, with the resize (`decoded_warp`).
        """
        c = self.cfg
        images = tf.cast(images, tf.float32)
        seed_img, _ = policies.split(seed, 2)
        shape = tf.shape(images)
        batch, height, width = shape[0], shape[1], shape[2]
        s = dict(zip(_SLOTS, policies.split(seed_img, len(_SLOTS))))
        x = images
        if self.geometric:
            if not warped:
                m = self.sample_matrices(batch, height, width, seed_img)
                x = geometry.warp(x, m, c.fill_mode, c.cval)
        elif self.flips:
            fh, fv = self._flips(_draw(batch, s["geometry"]))
            x = tf.where(fh[:, None, None, None], tf.reverse(x, [2]), x)
            x = tf.where(fv[:, None, None, None], tf.reverse(x, [1]), x)
        if c.channel_shift_range:
            r = float(c.channel_shift_range)
            shift = policies.uniform([batch], s["channel_shift"], -r, r)[:, None, None, None]
            lo = tf.reduce_min(x, axis=[1, 2, 3], keepdims=True)
            hi = tf.reduce_max(x, axis=[1, 2, 3], keepdims=True)
            x = tf.clip_by_value(x + shift, lo, hi)
        if c.brightness_range:
            lo_b, hi_b = (float(v) for v in c.brightness_range)
            factor = policies.uniform([batch], s["brightness"], lo_b, hi_b)[:, None, None, None]
            x = tf.clip_by_value(x * factor, 0.0, 255.0)
        if c.color_jitter:
            x = policies.color_jitter(x, float(c.color_jitter), s["color_jitter"])
        if c.rand_augment and c.rand_augment[0] > 0:
            # Same seed slot and plan as the geometric part in sample_matrices.
            plan = policies.rand_augment_plan(batch, c.rand_augment[0], c.rand_augment[1],
                                              s["rand_augment"])
            x = policies.rand_augment_pixels(x, plan)
        if c.random_erasing:
            x = policies.random_erasing(x, float(c.random_erasing), s["random_erasing"])
        return x

    def one_hot(self, labels: tf.Tensor) -> tf.Tensor:
        """int [B] labels -> float32 [B, C]; float [B, C] labels pass through as float32."""
        if labels.shape.rank == 2:
            return tf.cast(labels, tf.float32)
        return tf.one_hot(tf.cast(labels, tf.int32), self.num_classes, dtype=tf.float32)

    def mix_batch(self, images: tf.Tensor, labels: tf.Tensor, seed) -> tuple[tf.Tensor, tf.Tensor]:
        """Step 5 only (MixUp/CutMix); labels are returned one-hot. Identity when both are off."""
        if not self.needs_one_hot:
            return images, labels
        _, seed_mix = policies.split(seed, 2)
        return policies.mix(tf.cast(images, tf.float32), self.one_hot(labels), seed_mix,
                            float(self.cfg.mixup), float(self.cfg.cutmix))

    def __call__(self, images: tf.Tensor, labels: tf.Tensor, seed,
                 warped: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
        """Augment one batch.

        Args:
            images: float32 [B, H, W, 3], raw RGB 0..255.
            labels: int [B] or one-hot float [B, C].
            seed: int32/int64 tensor of shape [2]; the output depends only on it and the inputs.
            warped: the images went through `decoded_warp` already (in `make_dataset`).

        Returns:
            `(images, labels)`: images float32 [B, H, W, 3]; labels unchanged, or one-hot float32
            [B, C] soft labels when MixUp/CutMix is on.

        Example:
        >>> from tfft.config import AugmentConfig
        >>> aug = Augmenter(AugmentConfig(mixup=0.2), (16, 16), 3)
        >>> _, y = aug(tf.zeros([4, 16, 16, 3]), tf.constant([0, 1, 2, 0]), tf.constant([0, 7]))
        >>> y.shape
        TensorShape([4, 3])
        """
        x = self.augment_images(images, seed, warped)
        return self.mix_batch(x, labels, seed)


def build_augmenter(augment_cfg: AugmentConfig, image_size: tuple[int, int],
                    num_classes: int) -> Optional[Augmenter]:
    """Build the augmenter the config asks for, or None when nothing is enabled.

    `rescale` is ignored here with a warning (see `tfft.augment.standardize`), and the
    standardizations (`featurewise_*`, `samplewise_*`) are not augmentations: they belong in the
    saved model (`standardization_layers`).

    Args:
        augment_cfg: the `augment` section of the config.
        image_size: `(height, width)` of the batches it will receive.
        num_classes: the number of classes (for one-hot labels under MixUp/CutMix).

    Returns:
        An `Augmenter`, or None.

    Example:
    >>> from tfft.config import AugmentConfig
    >>> build_augmenter(AugmentConfig(horizontal_flip=False), (32, 32), 2) is None
    True
    """
    if augment_cfg.rescale not in (None, 1, 1.0):
        warnings.warn(
            f"augment.rescale={augment_cfg.rescale} is ignored: tfft models take raw 0-255 images "
            "and contain the backbone's own preprocessing, so rescaling the input would break it",
            stacklevel=2)
    augmenter = Augmenter(augment_cfg, image_size, num_classes)
    return augmenter if augmenter.enabled else None


def batch_seed(seed: int, epoch, step) -> tf.Tensor:
    """The [2] int64 seed of batch `step` of epoch `epoch` for run seed `seed`.

    A pure function of its arguments, so a resumed run reproduces an uninterrupted one. The
    pipeline and `AugmentLayer` give the same output when fed the same seed.

    Example:
    >>> batch_seed(42, 0, 3).shape
    TensorShape([2])
    """
    base = tf.random.experimental.stateless_fold_in(
        tf.constant([int(seed), 0x7AF7], tf.int64), tf.cast(epoch, tf.int64), alg=RNG_ALG)
    return tf.random.experimental.stateless_fold_in(base, tf.cast(step, tf.int64), alg=RNG_ALG)


class AugmentLayer(keras.layers.Layer):
    """Applies an `Augmenter`'s image steps inside the model, in training only.

    Design: the layer takes `[images, seed]`, where `seed` is the same [2] (or per-batch [B, 2],
    first row used) integer seed the pipeline would have passed to `Augmenter.__call__`; so for
    the same seed, pipeline and model placement give the same images, and resuming is exactly as
    reproducible as the seeds fed in (`batch_seed(run_seed, epoch, step)`). Called with images
    only, it falls back to a non-trainable int64 step counter: seed `[base_seed, counter]`, the
    counter incremented each training call (it is in the training wrapper's checkpoint). The
    counter mode is convenient but under a multi-replica strategy every replica sees the same
    seed; prefer feeding seeds.

    MixUp/CutMix need the labels and are not applied here: call `augmenter.mix_batch` in the
    pipeline (or the train step) when `augmenter.needs_one_hot`.

    The warp is an XLA-compiled gather (`geometry.warp(backend="xla")`), so a `jit_compile`d
    training step may contain this layer.

    Args:
        augmenter: an `Augmenter`.
        base_seed: the seed of the counter mode.

    Example:
    >>> from tfft.config import AugmentConfig
    >>> layer = AugmentLayer(Augmenter(AugmentConfig(rotation_range=10), (16, 16), 2))
    >>> layer([tf.zeros([2, 16, 16, 3]), tf.constant([1, 2])], training=True).shape
    TensorShape([2, 16, 16, 3])
    """

    def __init__(self, augmenter: Augmenter, base_seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.augmenter = augmenter
        self.base_seed = int(base_seed)
        self.counter = self.add_weight(shape=(), dtype="int64", initializer="zeros",
                                       trainable=False, name="augment_step",
                                       aggregation="only_first_replica")

    def call(self, inputs, training=None):
        if isinstance(inputs, (list, tuple)):
            images, seed = inputs
            seed = tf.cast(seed, tf.int64)
            if seed.shape.rank == 2:
                seed = seed[0]
        else:
            images, seed = inputs, None
        if not training:
            return images
        if seed is None:
            step = self.counter.value
            seed = tf.stack([tf.constant(self.base_seed, tf.int64), tf.cast(step, tf.int64)])
            self.counter.assign_add(1)
        return self.augmenter.augment_images(images, seed)

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple)):
            return tuple(input_shape[0])
        return tuple(input_shape)


__all__ = ["Augmenter", "AugmentLayer", "batch_seed", "build_augmenter", "sample_shift", "zoom_bounds"]
