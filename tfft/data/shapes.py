"""`builtin:shapes` and `builtin:shapes-multi`: deterministic, generated image datasets (no files, no network).

Eight classes of shapes and textures: circle, square, triangle, star, cross, ring, stripes,
checkerboard. Each image has a random two-colour gradient background, a random foreground colour
(with a minimum contrast), random scale, position and small rotation, and Gaussian noise, so the
class is in the *shape*, not the mean colour. Image `k` of class `c` is rendered from
`numpy.random.default_rng([CONTENT_SEED, c, k])` at `NATIVE_SIZE` pixels, so the pixels never
depend on the run's seed (runs with different seeds see the same images; the seed only changes
the train/val/test split) and nothing is held in memory: images are rendered per element inside
the tf.data pipeline.
"""

from __future__ import annotations

import numpy as np

CLASSES = ("circle", "square", "triangle", "star", "cross", "ring", "stripes", "checkerboard")
NATIVE_SIZE = 64
CONTENT_SEED = 20240611


def render(label: int, index: int, size: int = NATIVE_SIZE) -> np.ndarray:
    """Render image `index` of class `label` as uint8 [size, size, 3].

    Args:
        label: class index into `CLASSES`.
        index: which image of that class (any non-negative integer).
        size: side in pixels.

    Returns:
        A `numpy.ndarray` (size, size, 3) uint8; the same arguments always give the same pixels.

    Example:
    >>> render(0, 3).shape
    (64, 64, 3)
    >>> bool((render(0, 3) == render(0, 3)).all())
    True
    """
    rng = np.random.default_rng([CONTENT_SEED, int(label), int(index)])
    xx, yy, image, bg_mean = _background(rng, size)
    fg = _contrasting_colour(rng, bg_mean)
    radius = rng.uniform(0.16, 0.36)
    cx = rng.uniform(radius, 1 - radius)
    cy = rng.uniform(radius, 1 - radius)
    mask = _shape_mask(CLASSES[int(label) % len(CLASSES)], xx, yy, cx, cy, radius, rng)
    image = np.where(mask[..., None], fg, image)
    image = image + rng.normal(0, rng.uniform(2, 18), image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _background(rng: np.random.Generator, size: int):
    """Pixel-centre coordinates (xx, yy in 0..1), a linear gradient between two random colours
    (float [size, size, 3]) and its mean colour."""
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    angle = rng.uniform(0, 2 * np.pi)
    t = np.clip(0.5 + (xx - 0.5) * np.cos(angle) + (yy - 0.5) * np.sin(angle), 0, 1)[..., None]
    return xx, yy, c0 * (1 - t) + c1 * t, (c0 + c1) / 2


def _contrasting_colour(rng: np.random.Generator, bg_mean: np.ndarray) -> np.ndarray:
    """A random foreground colour far enough from the background's mean (20 tries at most)."""
    for _ in range(20):
        fg = rng.uniform(0, 255, 3)
        if np.abs(fg - bg_mean).sum() > 180:
            break
    return fg


def _shape_mask(name: str, xx: np.ndarray, yy: np.ndarray, cx: float, cy: float, radius: float,
                rng: np.random.Generator) -> np.ndarray:
    """The boolean mask of one shape of class `name` centred at (cx, cy), slightly rotated."""
    theta = rng.uniform(-0.35, 0.35)
    u = (xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)
    v = -(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)
    dist = np.sqrt(u * u + v * v)
    if name == "circle":
        mask = dist < radius
    elif name == "square":
        mask = (np.abs(u) < radius * 0.85) & (np.abs(v) < radius * 0.85)
    elif name == "triangle":
        # Upward equilateral triangle: three half-planes.
        mask = (v <= radius * 0.5) & (v + radius >= np.sqrt(3) * np.abs(u))
    elif name == "star":
        phi = np.arctan2(v, u) + rng.uniform(0, 2 * np.pi)
        mask = dist < radius * (0.55 + 0.45 * np.cos(5 * phi))
    elif name == "cross":
        arm = radius * 0.32
        mask = ((np.abs(u) < radius) & (np.abs(v) < arm)) | ((np.abs(v) < radius) & (np.abs(u) < arm))
    elif name == "ring":
        mask = (dist < radius) & (dist > radius * rng.uniform(0.5, 0.7))
    elif name == "stripes":
        period = rng.uniform(0.06, 0.12)
        region = (np.abs(u) < radius) & (np.abs(v) < radius)
        mask = region & (np.mod(v, period) < period / 2)
    else:  # checkerboard
        period = rng.uniform(0.06, 0.12)
        region = (np.abs(u) < radius) & (np.abs(v) < radius)
        mask = region & ((np.floor(u / period) + np.floor(v / period)) % 2 == 0)
    return mask


def render_id(global_id: int, per_class: int, size: int = NATIVE_SIZE) -> np.ndarray:
    """Render the image with dataset id `global_id` (= label * per_class + index)."""
    label, index = divmod(int(global_id), int(per_class))
    return render(label, index, size)


def labels_for(per_class: int) -> np.ndarray:
    """The label of every id 0 .. len(CLASSES) * per_class - 1."""
    return np.repeat(np.arange(len(CLASSES), dtype=np.int32), int(per_class))


# -- builtin:shapes-multi ------------------------------------------------------------------------

# Probabilities of 0, 1, 2 and 3 shapes in one `builtin:shapes-multi` image.
MULTI_COUNT_PROBS = (0.05, 0.30, 0.40, 0.25)
_MULTI_SALT = 7  # keeps the multi-label images' random streams apart from the single-label ones


def _multi_plan(index: int) -> tuple[np.random.Generator, np.ndarray]:
    """The random stream of multi-label image `index` and its classes (sorted), drawn first."""
    rng = np.random.default_rng([CONTENT_SEED, _MULTI_SALT, int(index)])
    count = int(rng.choice(len(MULTI_COUNT_PROBS), p=MULTI_COUNT_PROBS))
    classes = np.sort(rng.choice(len(CLASSES), size=count, replace=False)).astype(np.int32)
    return rng, classes


def multi_labels(index: int) -> np.ndarray:
    """The classes (indices into `CLASSES`, sorted) shown in `builtin:shapes-multi` image `index`.

    Example:
    >>> [CLASSES[c] for c in multi_labels(0)] == [CLASSES[c] for c in multi_labels(0)]
    True
    """
    return _multi_plan(index)[1]


def multi_hot_for(count: int) -> np.ndarray:
    """The int32 [count, len(CLASSES)] multi-hot labels of images 0 .. count - 1."""
    out = np.zeros((int(count), len(CLASSES)), dtype=np.int32)
    for index in range(int(count)):
        out[index, multi_labels(index)] = 1
    return out


def render_multi(index: int, size: int = NATIVE_SIZE) -> np.ndarray:
    """Render `builtin:shapes-multi` image `index`: 0-3 different shapes, each in its own quadrant.

    The background, noise and shapes are drawn as in `render`; each shape has its own colour
    (contrasting with the background), size and position inside one cell of a 2x2 grid, so no
    two overlap and every shape that is labelled is visible whole.

    Args:
        index: the image id (any non-negative integer).
        size: side in pixels.

    Returns:
        uint8 [size, size, 3]; the same index always gives the same pixels.

    Example:
    >>> render_multi(3).shape
    (64, 64, 3)
    """
    rng, classes = _multi_plan(index)
    xx, yy, image, bg_mean = _background(rng, size)
    cells = rng.permutation(4)[:len(classes)]
    for label, cell in zip(classes, cells):
        fg = _contrasting_colour(rng, bg_mean)
        radius = rng.uniform(0.13, 0.21)
        x0, y0 = 0.5 * (cell % 2), 0.5 * (cell // 2)
        cx = x0 + rng.uniform(radius, 0.5 - radius)
        cy = y0 + rng.uniform(radius, 0.5 - radius)
        mask = _shape_mask(CLASSES[int(label)], xx, yy, cx, cy, radius, rng)
        image = np.where(mask[..., None], fg, image)
    image = image + rng.normal(0, rng.uniform(2, 12), image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)
