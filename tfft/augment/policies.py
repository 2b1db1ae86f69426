"""Modern augmentation policies as batched, stateless TensorFlow ops.

Every function takes a `[2]` integer seed and draws per-image parameters with
`tf.random.stateless_*`, so its output depends only on its inputs and the seed. Images are
float32 `[B, H, W, 3]` in 0..255; every pixel policy clips its result to 0..255.
"""

from __future__ import annotations

import math

import tensorflow as tf

from tfft.augment import geometry

_GRAY = (0.299, 0.587, 0.114)  # PIL's "L" conversion weights
# Pinned: "auto_select" picks a different generator under XLA, which would make a jit-compiled
# model placement disagree with the pipeline for the same seed.
RNG_ALG = "philox"


def split(seed: tf.Tensor, num: int) -> list[tf.Tensor]:
    """`num` independent [2] int64 seeds derived from `seed`."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=num, alg=RNG_ALG)
    return [seeds[i] for i in range(num)]


def uniform(shape, seed, lo=0.0, hi=1.0) -> tf.Tensor:
    return tf.random.stateless_uniform(shape, seed=seed, minval=lo, maxval=hi, dtype=tf.float32,
                                     alg=RNG_ALG)


def random_sign(batch, seed) -> tf.Tensor:
    return tf.where(uniform([batch], seed) < 0.5, -1.0, 1.0)


def beta(batch, seed, alpha: float) -> tf.Tensor:
    """[B] samples of Beta(alpha, alpha) as g1 / (g1 + g2) of two stateless Gamma draws."""
    s1, s2 = split(seed, 2)
    g1 = tf.random.stateless_gamma([batch], seed=s1, alpha=alpha)
    g2 = tf.random.stateless_gamma([batch], seed=s2, alpha=alpha)
    return g1 / tf.maximum(g1 + g2, 1e-12)


def _b(v: tf.Tensor) -> tf.Tensor:
    """[B] -> [B, 1, 1, 1] for broadcasting over images."""
    return tf.reshape(v, [-1, 1, 1, 1])


def grayscale(images: tf.Tensor) -> tf.Tensor:
    """[B, H, W, 1] luminance (PIL "L" weights)."""
    return tf.reduce_sum(images * tf.constant(_GRAY, tf.float32), axis=-1, keepdims=True)


def blend(degenerate: tf.Tensor, images: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """PIL ImageEnhance: `degenerate + factor * (image - degenerate)`, clipped to 0..255."""
    return tf.clip_by_value(degenerate + _b(factor) * (images - degenerate), 0.0, 255.0)


def box_mask(height, width, y0, x0, box_h, box_w) -> tf.Tensor:
    """[B, H, W, 1] float mask, 1 inside the per-image boxes `[y0, y0+box_h) x [x0, x0+box_w)`."""
    rows = tf.cast(tf.range(height), tf.float32)[None, :, None]
    cols = tf.cast(tf.range(width), tf.float32)[None, None, :]
    inside = ((rows >= y0[:, None, None]) & (rows < (y0 + box_h)[:, None, None])
              & (cols >= x0[:, None, None]) & (cols < (x0 + box_w)[:, None, None]))
    return tf.cast(inside, tf.float32)[..., None]


# --------------------------------------------------------------------------- geometry policies

def random_resized_crop_matrix(batch, height, width, scale: tuple[float, float], seed,
                               ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> tf.Tensor:
    """[B, 3, 3] matrices that crop a random box and resize it to the full image.

    The box area is `U(scale)` of the image and its aspect ratio log-uniform in `ratio`
    (Inception-style); sides longer than the image are clipped to it (instead of torchvision's
    10 retries), and the box is placed uniformly inside the image.
    """
    s_area, s_ratio, s_x, s_y = split(seed, 4)
    area = uniform([batch], s_area, scale[0], scale[1])
    log_ratio = uniform([batch], s_ratio, math.log(ratio[0]), math.log(ratio[1]))
    r = tf.exp(log_ratio)
    fw = tf.minimum(tf.sqrt(area * r), 1.0)  # box width as a fraction of the width
    fh = tf.minimum(tf.sqrt(area / r), 1.0)
    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    x0 = uniform([batch], s_x) * (1.0 - fw) * w  # box left edge (pixel-edge coordinates)
    y0 = uniform([batch], s_y) * (1.0 - fh) * h
    zero, one = tf.zeros([batch]), tf.ones([batch])
    # input = x0 + (out + 0.5) * fw - 0.5   (half-pixel centres, as tf.image.resize)
    return geometry.matrix([[fw, zero, x0 + 0.5 * fw - 0.5], [zero, fh, y0 + 0.5 * fh - 0.5],
                          [zero, zero, one]])


# --------------------------------------------------------------------------- colour policies

def color_jitter(images: tf.Tensor, strength: float, seed) -> tf.Tensor:
    """SimCLR-style jitter: brightness, contrast, saturation `1 +- 0.8 s`, hue `+- 0.2 s` turn.

    Applied in that fixed order, each clipped to 0..255; hue is a rotation of the chroma plane in
    YIQ space (batched per-image 3x3 matrices).
    """
    batch = tf.shape(images)[0]
    sb, sc, ss, sh = split(seed, 4)
    lo, hi = max(0.0, 1.0 - 0.8 * strength), 1.0 + 0.8 * strength
    x = tf.clip_by_value(images * _b(uniform([batch], sb, lo, hi)), 0.0, 255.0)
    mean = tf.reduce_mean(grayscale(x), axis=[1, 2, 3], keepdims=True)
    x = blend(mean, x, uniform([batch], sc, lo, hi))
    x = blend(grayscale(x), x, uniform([batch], ss, lo, hi))
    angle = uniform([batch], sh, -0.2 * strength, 0.2 * strength) * (2.0 * math.pi)
    to_yiq = tf.constant([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322],
                          [0.211, -0.523, 0.312]], tf.float32)
    to_rgb = tf.linalg.inv(to_yiq)
    c, s = tf.cos(angle), tf.sin(angle)
    zero, one = tf.zeros_like(c), tf.ones_like(c)
    rot = geometry.matrix([[one, zero, zero], [zero, c, -s], [zero, s, c]])
    m = to_rgb[None] @ rot @ to_yiq[None]  # [B, 3, 3]; pixel' = m @ pixel
    x = tf.einsum("bhwc,bdc->bhwd", x, m)
    return tf.clip_by_value(x, 0.0, 255.0)


# RandAugment: timm's op list without Equalize (no cheap batched histogram equalisation).
RAND_OPS = ("Identity", "AutoContrast", "Invert", "Posterize", "Solarize", "SolarizeAdd", "Color",
            "Contrast", "Brightness", "Sharpness", "Rotate", "ShearX", "ShearY", "TranslateX",
            "TranslateY")
_GEOMETRIC = ("Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY")


def rand_augment_plan(batch, num_ops: int, magnitude: float, seed) -> list[tuple[tf.Tensor, tf.Tensor]]:
    """Per round: ([B] op index into RAND_OPS, [B] signed level in [-1, 1])."""
    level = min(max(float(magnitude), 0.0), 10.0) / 10.0
    plan = []
    for s in split(seed, max(num_ops, 1))[:num_ops]:
        s_op, s_sign = split(s, 2)
        op = tf.random.stateless_uniform([batch], seed=s_op, minval=0, maxval=len(RAND_OPS),
                                         dtype=tf.int32, alg=RNG_ALG)
        plan.append((op, random_sign(batch, s_sign) * level))
    return plan


def rand_augment_matrix(plan, height, width) -> tf.Tensor:
    """[B, 3, 3]: the geometric RandAugment ops of every round, composed in round order."""
    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    total = None
    for op, lvl in plan:
        zero, one = tf.zeros_like(lvl), tf.ones_like(lvl)
        angle = lvl * (30.0 * math.pi / 180.0)
        c, s = tf.cos(angle), tf.sin(angle)
        candidates = {
            "Rotate": [[c, -s, zero], [s, c, zero]],
            "ShearX": [[one, 0.3 * lvl, zero], [zero, one, zero]],
            "ShearY": [[one, zero, zero], [0.3 * lvl, one, zero]],
            "TranslateX": [[one, zero, 0.45 * lvl * w], [zero, one, zero]],
            "TranslateY": [[one, zero, zero], [zero, one, 0.45 * lvl * h]],
        }
        m = tf.eye(3, batch_shape=[tf.shape(op)[0]])
        for name, rows in candidates.items():
            cand = geometry.matrix(rows + [[zero, zero, one]])
            chosen = tf.equal(op, RAND_OPS.index(name))[:, None, None]
            m = tf.where(chosen, cand, m)
        m = geometry.about_centre(m, height, width)
        total = m if total is None else total @ m
    return total


def _sharpen_degenerate(x: tf.Tensor) -> tf.Tensor:
    kernel = tf.constant([[1, 1, 1], [1, 5, 1], [1, 1, 1]], tf.float32) / 13.0
    kernel = tf.tile(kernel[:, :, None, None], [1, 1, 3, 1])
    smooth = tf.nn.depthwise_conv2d(x, kernel, [1, 1, 1, 1], "VALID")
    inner = tf.pad(tf.ones_like(smooth[..., :1]), [[0, 0], [1, 1], [1, 1], [0, 0]])
    return tf.pad(smooth, [[0, 0], [1, 1], [1, 1], [0, 0]]) * inner + x * (1.0 - inner)


def rand_augment_pixels(images: tf.Tensor, plan) -> tf.Tensor:
    """Apply the pixel (non-geometric) RandAugment ops of every round, chosen per image."""
    x = images
    for op, lvl in plan:
        mag = tf.abs(lvl)
        enhance = 1.0 + 0.9 * lvl
        lo = tf.reduce_min(x, axis=[1, 2], keepdims=True)
        hi = tf.reduce_max(x, axis=[1, 2], keepdims=True)
        stretched = tf.where(hi > lo, (x - lo) * 255.0 / tf.maximum(hi - lo, 1e-6), x)
        shift = tf.pow(2.0, tf.floor(4.0 * mag))  # posterize keeps 8 - floor(4 l) bits
        thresh = 256.0 - 256.0 * mag
        outputs = {
            "AutoContrast": stretched,
            "Invert": 255.0 - x,
            "Posterize": tf.floor(x / _b(shift)) * _b(shift),
            "Solarize": tf.where(x >= _b(thresh), 255.0 - x, x),
            "SolarizeAdd": tf.where(x < 128.0, tf.minimum(x + _b(110.0 * mag), 255.0), x),
            "Color": blend(grayscale(x), x, enhance),
            "Contrast": blend(tf.reduce_mean(grayscale(x), axis=[1, 2, 3], keepdims=True), x, enhance),
            "Brightness": blend(tf.zeros_like(x), x, enhance),
            "Sharpness": blend(_sharpen_degenerate(x), x, enhance),
        }
        out = x
        for name, value in outputs.items():
            out = tf.where(_b(tf.equal(op, RAND_OPS.index(name))), value, out)
        x = out
    return x


# --------------------------------------------------------------------------- erasing and mixing

def random_erasing(images: tf.Tensor, prob: float, seed, area=(0.02, 1 / 3), ratio=(0.3, 3.3)) -> tf.Tensor:
    """With probability `prob` per image, fill one random box with uniform noise in 0..255."""
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    s_p, s_a, s_r, s_x, s_y, s_n = split(seed, 6)
    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    target = uniform([batch], s_a, area[0], area[1]) * h * w
    r = tf.exp(uniform([batch], s_r, math.log(ratio[0]), math.log(ratio[1])))
    box_h = tf.minimum(tf.round(tf.sqrt(target * r)), h)
    box_w = tf.minimum(tf.round(tf.sqrt(target / r)), w)
    y0 = tf.floor(uniform([batch], s_y) * (h - box_h + 1.0))
    x0 = tf.floor(uniform([batch], s_x) * (w - box_w + 1.0))
    on = tf.cast(uniform([batch], s_p) < prob, tf.float32)
    mask = box_mask(height, width, y0, x0, box_h, box_w) * _b(on)
    noise = tf.random.stateless_uniform(shape, seed=s_n, minval=0.0, maxval=255.0, alg=RNG_ALG)
    return images * (1.0 - mask) + noise * mask


def mix(images: tf.Tensor, labels: tf.Tensor, seed, mixup: float, cutmix: float) -> tuple[tf.Tensor, tf.Tensor]:
    """MixUp and/or CutMix with a random partner per image; labels one-hot float in, soft out.

    Each image i is mixed with image `perm[i]` (a stateless random permutation of the batch)
    with its own `lambda ~ Beta(alpha, alpha)`. When both are on, each image uses CutMix or
    MixUp with probability 1/2. CutMix pastes a box of area `(1 - lambda)` (clipped at the
    border) and sets the label weight to the pasted area actually kept. Label rows sum to 1
    for one-hot labels; multi-hot label vectors (multi-label data) are mixed the same way, each
    label's target becoming `lambda * own + (1 - lambda) * partner's`.
    """
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    s_perm, s_mix, s_cut, s_which, s_x, s_y = split(seed, 6)
    perm = tf.argsort(uniform([batch], s_perm))
    other_x = tf.gather(images, perm)
    other_y = tf.gather(labels, perm)
    out_x, lam = images, tf.ones([batch])
    if mixup > 0:
        lam_m = beta(batch, s_mix, mixup)
        mixed = _b(lam_m) * images + (1.0 - _b(lam_m)) * other_x
    if cutmix > 0:
        lam_c = beta(batch, s_cut, cutmix)
        h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
        cut = tf.sqrt(1.0 - lam_c)
        cy, cx = uniform([batch], s_y) * h, uniform([batch], s_x) * w
        y0 = tf.clip_by_value(tf.round(cy - cut * h / 2), 0.0, h)
        y1 = tf.clip_by_value(tf.round(cy + cut * h / 2), 0.0, h)
        x0 = tf.clip_by_value(tf.round(cx - cut * w / 2), 0.0, w)
        x1 = tf.clip_by_value(tf.round(cx + cut * w / 2), 0.0, w)
        mask = box_mask(height, width, y0, x0, y1 - y0, x1 - x0)
        lam_c = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
        cutted = images * (1.0 - mask) + other_x * mask
    if mixup > 0 and cutmix > 0:
        use_cut = uniform([batch], s_which) < 0.5
        out_x = tf.where(_b(use_cut), cutted, mixed)
        lam = tf.where(use_cut, lam_c, lam_m)
    elif mixup > 0:
        out_x, lam = mixed, lam_m
    elif cutmix > 0:
        out_x, lam = cutted, lam_c
    lam = lam[:, None]
    return out_x, lam * labels + (1.0 - lam) * other_y
