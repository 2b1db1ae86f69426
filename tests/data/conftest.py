"""Fixtures for tfft.data tests: folders of odd and broken image files, created in tmp dirs."""

from __future__ import annotations

import io
import platform
from pathlib import Path

import numpy as np
import pytest


def offset_steps(image_size):
    """An `on_decoded` step and the same step on resized batches: one stateless offset per image."""
    import tensorflow as tf

    from tfft.data import resize_decoded

    def offsets(seed, batch_size):
        return tf.random.stateless_uniform([batch_size], seed=seed, maxval=1000.0)[:, None, None, None]

    def on_decoded(decoded, seed):
        images = resize_decoded(decoded, image_size)
        return images + offsets(seed, tf.shape(images)[0])

    def batched(images, labels, seed):
        return images + offsets(seed, tf.shape(images)[0]), labels

    return on_decoded, batched


def assert_as_tf_resizes(actual, expected):
    """`actual` is what TF's resize gives (`expected`): bitwise on x86-64, whose TF wheels keep
    every multiply and add of their resize kernels apart."""
    if platform.machine().lower() in ("x86_64", "amd64"):
        np.testing.assert_array_equal(actual, expected)
    else:  # pragma: no cover - other TF builds may fuse multiply-adds
        np.testing.assert_allclose(actual, expected, atol=0.01)


def mixed_decoded_batch(size=(40, 56), seed=1):
    """A `DecodedBatch` of three images (up-, down- and not scaled to `size`), zero padded, and a
    fourth that comes already resized; with the three images and the fourth's resized pixels."""
    import tensorflow as tf

    from tfft.data import DecodedBatch, decode

    rng = np.random.default_rng(seed)
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in [(30, 20, 3), (90, 70, 3), (*size, 3)]]
    raw = np.zeros((4, max(image.size for image in images)), np.uint8)
    for i, image in enumerate(images):
        raw[i, :image.size] = image.reshape(-1)
    large = decode.resize(tf.constant(rng.integers(0, 256, (300, 200, 3), dtype=np.uint8)), size).numpy()
    resized = np.zeros((4, large.size), np.float32)
    resized[3] = large.reshape(-1)
    shapes = np.array([image.shape for image in images] + [(0, 0, 3)], np.int32)
    return DecodedBatch(tf.constant(raw), tf.constant(shapes), tf.constant(resized)), images, large


def _rgb(seed: int, height: int = 24, width: int = 32) -> np.ndarray:
    """A smooth, JPEG-friendly colour image (so lossy formats stay close to the original)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = rng.uniform(40, 200, 3)
    image = base + 50 * np.stack([np.sin(xx / 5.0), np.cos(yy / 4.0), np.sin((xx + yy) / 7.0)], -1)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_odd_images(folder: Path) -> dict[str, dict]:
    """Write one file of each odd kind to `folder`; returns name -> {path, expected, tol, kinds}.

    `expected` is the HxWx3 uint8 array a correct decoder gives (None for files that must be
    skipped); `tol` the max abs difference allowed (lossy formats).
    """
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, dict] = {}
    rgb = _rgb(1)

    def add(name, expected, tol=0, **extra):
        out[name] = {"path": folder / name, "expected": expected, "tol": tol, **extra}

    Image.fromarray(rgb).save(folder / "plain.png")
    add("plain.png", rgb)

    Image.fromarray(rgb).save(folder / "plain.jpg", quality=95)
    add("plain.jpg", rgb, tol=40)

    Image.fromarray(rgb).save(folder / "progressive.jpg", quality=95, progressive=True)
    add("progressive.jpg", rgb, tol=40)

    gray = rgb[..., 1]
    Image.fromarray(gray).save(folder / "gray.png")
    add("gray.png", np.repeat(gray[..., None], 3, -1))

    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    add("cmyk.jpg", rgb, tol=40, kind="cmyk")

    deep = (rgb[..., 0].astype(np.uint16) * 257 + 100).astype(np.uint16)
    Image.fromarray(deep).save(folder / "deep16.png")  # mode I;16
    add("deep16.png", np.repeat((deep >> 8).astype(np.uint8)[..., None], 3, -1), kind="16bit")

    alpha = np.linspace(0, 255, rgb.shape[0] * rgb.shape[1]).reshape(rgb.shape[:2]).astype(np.uint8)
    Image.fromarray(np.dstack([rgb, alpha])).save(folder / "rgba.png")
    add("rgba.png", rgb, kind="alpha")  # alpha dropped, colour kept

    palette = Image.fromarray(rgb).quantize(16)
    palette.save(folder / "palette.gif")
    add("palette.gif", np.asarray(palette.convert("RGB")), kind="palette")

    palette.save(folder / "palette_t.gif", transparency=0)
    add("palette_t.gif", np.asarray(palette.convert("RGB")), kind="palette")

    palette.save(folder / "palette.png")
    add("palette.png", np.asarray(palette.convert("RGB")), kind="palette")

    Image.fromarray(rgb).save(folder / "lossless.webp", lossless=True)
    add("lossless.webp", rgb, kind="webp")

    Image.fromarray(rgb).save(folder / "plain.bmp")
    add("plain.bmp", rgb, kind="bmp")

    palette.save(folder / "palette.bmp")
    add("palette.bmp", np.asarray(palette.convert("RGB")), kind="bmp")

    # EXIF orientation 6: stored landscape, displayed rotated 90 degrees clockwise.
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rgb).save(folder / "rotated.jpg", quality=95, exif=exif.tobytes())
    from PIL import ImageOps

    add("rotated.jpg", np.asarray(ImageOps.exif_transpose(Image.open(folder / "rotated.jpg")).convert("RGB")),
        tol=0, kind="exif_rotated")

    # Broken files: must be skipped with a reason.
    buffer = io.BytesIO()
    Image.fromarray(_rgb(2, 64, 64)).save(buffer, "JPEG", quality=90)
    data = buffer.getvalue()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    add("truncated.jpg", None)
    (folder / "empty.jpg").write_bytes(b"")
    add("empty.jpg", None)
    (folder / "text.jpg").write_text("this is not an image\n")
    add("text.jpg", None)
    return out


@pytest.fixture
def odd_images(tmp_path: Path) -> dict[str, dict]:
    """One file of each odd or broken kind in tmp_path/odd/."""
    return write_odd_images(tmp_path / "odd")


@pytest.fixture
def messy_folder(tmp_path: Path) -> Path:
    """Classes a (6 good + 3 bad + hidden + .txt) and b (5 good incl. odd formats) and an empty c."""
    from PIL import Image

    root = tmp_path / "messy"
    for index, (name, count) in enumerate({"a": 6, "b": 3}.items()):
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.fromarray(_rgb(10 * index + i)).save(root / name / f"{name}_{i:03d}.jpg", quality=90)
    odd = write_odd_images(tmp_path / "odd_src")
    for name in ("truncated.jpg", "empty.jpg", "text.jpg"):
        (root / "a" / name).write_bytes(odd[name]["path"].read_bytes())
    for name in ("cmyk.jpg", "deep16.png"):
        (root / "b" / name).write_bytes(odd[name]["path"].read_bytes())
    (root / "a" / ".hidden.jpg").write_bytes(b"junk")
    (root / "a" / "notes.txt").write_text("not an image")
    # An exact duplicate of a good file.
    (root / "b" / "copy.jpg").write_bytes((root / "b" / "b_000.jpg").read_bytes())
    (root / "c").mkdir()
    return root
