"""`builtin:shapes`: a deterministic, generated image-classification dataset (no files, no network).

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
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size
    yy, xx = np.meshgrid(coords, coords, indexing="ij")

    # Background: a linear gradient between two random colours.
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    angle = rng.uniform(0, 2 * np.pi)
    t = np.clip(0.5 + (xx - 0.5) * np.cos(angle) + (yy - 0.5) * np.sin(angle), 0, 1)[..., None]
    image = c0 * (1 - t) + c1 * t
    bg_mean = (c0 + c1) / 2

    # Foreground colour far enough from the background.
    for _ in range(20):
        fg = rng.uniform(0, 255, 3)
        if np.abs(fg - bg_mean).sum() > 180:
            break
    radius = rng.uniform(0.16, 0.36)
    cx = rng.uniform(radius, 1 - radius)
    cy = rng.uniform(radius, 1 - radius)
    theta = rng.uniform(-0.35, 0.35)
    u = (xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)
    v = -(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)
    dist = np.sqrt(u * u + v * v)
    name = CLASSES[int(label) % len(CLASSES)]
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
    image = np.where(mask[..., None], fg, image)
    image = image + rng.normal(0, rng.uniform(2, 18), image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def render_id(global_id: int, per_class: int, size: int = NATIVE_SIZE) -> np.ndarray:
    """Render the image with dataset id `global_id` (= label * per_class + index)."""
    label, index = divmod(int(global_id), int(per_class))
    return render(label, index, size)


def labels_for(per_class: int) -> np.ndarray:
    """The label of every id 0 .. len(CLASSES) * per_class - 1."""
    return np.repeat(np.arange(len(CLASSES), dtype=np.int32), int(per_class))
