"""Robust decoding: every odd format decodes to HxWx3 uint8 with the right pixels; broken files
are found at scan time with a reason."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tfft.data import decode
from tfft.data import probe as probing

GOOD = ["plain.png", "plain.jpg", "progressive.jpg", "gray.png", "cmyk.jpg", "deep16.png", "rgba.png",
        "palette.gif", "palette_t.gif", "palette.png", "lossless.webp", "plain.bmp", "palette.bmp",
        "rotated.jpg"]
BAD = ["truncated.jpg", "empty.jpg", "text.jpg"]


def _pipeline_decode(path, route, size):
    import tensorflow as tf

    return decode.decode_path(tf.constant(str(path)), tf.constant(route), size).numpy()


def test_scan_routes_and_reasons(odd_images):
    probes = {p.path.split("/")[-1]: p for p in probing.scan_files([v["path"] for v in odd_images.values()])}
    for name in GOOD:
        assert probes[name].ok, (name, probes[name].reason)
    for name in BAD:
        assert not probes[name].ok and probes[name].reason, name
    assert "empty" in probes["empty.jpg"].reason
    assert "not a readable image" in probes["text.jpg"].reason
    assert "truncated" in probes["truncated.jpg"].reason or "decode" in probes["truncated.jpg"].reason
    # Files TF would get wrong go through PIL; plain ones stay native.
    for name in ("cmyk.jpg", "rotated.jpg", "palette_t.gif", "palette.bmp"):
        assert probes[name].route == decode.ROUTE_PIL, name
    for name in ("plain.png", "plain.jpg", "progressive.jpg", "gray.png", "rgba.png", "lossless.webp",
                 "deep16.png", "palette.png", "plain.bmp"):
        assert probes[name].route == decode.ROUTE_TF, name
    assert "cmyk" in probes["cmyk.jpg"].kinds
    assert "16bit" in probes["deep16.png"].kinds
    assert "exif_rotated" in probes["rotated.jpg"].kinds
    assert "palette" in probes["palette.gif"].kinds
    assert "progressive" in probes["progressive.jpg"].kinds


@pytest.mark.parametrize("name", GOOD)
def test_decode_matches_expected_pixels(odd_images, name):
    item = odd_images[name]
    expected = item["expected"]
    probe = probing.scan_files([item["path"]])[0]
    height, width = expected.shape[:2]
    # The pipeline's decode at native size (resize is then the identity).
    got = _pipeline_decode(item["path"], probe.route, (height, width))
    assert got.shape == (height, width, 3) and got.dtype == np.float32
    diff = np.abs(got - expected.astype(np.float32)).max()
    assert diff <= item["tol"] + 0.01, (name, diff)
    # PIL's decoder (used for odd files and by decode_and_resize) agrees too.
    pil = decode.pil_decode(item["path"])
    assert pil.dtype == np.uint8 and pil.shape == (height, width, 3)
    assert np.abs(pil.astype(int) - expected.astype(int)).max() <= item["tol"], name


def test_exif_rotation_is_applied(odd_images):
    item = odd_images["rotated.jpg"]
    stored = np.asarray(Image.open(item["path"]).convert("RGB"))
    got = decode.pil_decode(item["path"])
    assert stored.shape[:2] == (24, 32) and got.shape[:2] == (32, 24)  # rotated
    assert np.array_equal(got, item["expected"])  # == ImageOps.exif_transpose
    assert np.array_equal(got, np.rot90(stored, k=-1))  # orientation 6 = 90 degrees clockwise


def test_decode_and_resize_paths_bytes_and_tensors(odd_images):
    import tensorflow as tf

    path = odd_images["plain.png"]["path"]
    from_path = decode.decode_and_resize(str(path), (16, 20)).numpy()
    from_bytes = decode.decode_and_resize(path.read_bytes(), (16, 20)).numpy()
    from_tensor = decode.decode_and_resize(tf.constant(path.read_bytes()), (16, 20)).numpy()
    assert from_path.shape == (16, 20, 3) and from_path.dtype == np.float32
    np.testing.assert_allclose(from_path, from_bytes)
    np.testing.assert_allclose(from_path, from_tensor)
    # Odd files given by path take the PIL route: the rotated JPEG comes out portrait.
    rotated = decode.decode_and_resize(str(odd_images["rotated.jpg"]["path"]), (32, 24)).numpy()
    np.testing.assert_allclose(rotated, odd_images["rotated.jpg"]["expected"], atol=0.01)
    from tfft.errors import DataError

    with pytest.raises(DataError, match="empty"):
        decode.decode_and_resize(str(odd_images["empty.jpg"]["path"]), (16, 16))


def test_resize_is_antialiased_bilinear():
    import tensorflow as tf

    stripes = np.zeros((64, 64, 3), np.uint8)
    stripes[:, ::2] = 255  # 1-pixel stripes alias badly without antialiasing
    out = decode.resize(tf.constant(stripes), (8, 8)).numpy()
    assert out.shape == (8, 8, 3)
    assert np.abs(out - 127.5).max() < 20


def test_jpeg_dct_scaling_matches_full_decode(tmp_path):
    """Downscale-on-decode (ratio 2/4/8) stays close to full decode + antialiased resize."""
    import tensorflow as tf

    yy, xx = np.mgrid[0:400, 0:600]
    smooth = np.stack([128 + 100 * np.sin(xx / 40), 128 + 100 * np.cos(yy / 30), (xx + yy) % 256 * 0 + 90], -1)
    path = tmp_path / "big.jpg"
    Image.fromarray(smooth.astype(np.uint8)).save(path, quality=95)
    data = tf.constant(path.read_bytes())
    scaled = decode.resize(decode.decode_bytes_native(data, (48, 64)), (48, 64)).numpy()
    full = decode.resize(tf.io.decode_jpeg(data, channels=3), (48, 64)).numpy()
    assert np.abs(scaled - full).mean() < 3.0
    # The same file through PIL with draft() agrees with TF's DCT scaling.
    pil = decode.resize(tf.constant(decode.pil_decode(str(path), target=(48, 64))), (48, 64)).numpy()
    assert np.abs(pil - scaled).mean() < 3.0


def test_huge_image_is_skipped_with_reason(tmp_path, monkeypatch):
    path = tmp_path / "wide.png"
    Image.new("RGB", (400, 300), (10, 20, 30)).save(path)
    monkeypatch.setattr(decode, "MAX_PIXELS", 100_000)
    probe = probing.probe_header(path)
    assert not probe.ok and "too large" in probe.reason
    monkeypatch.setattr(decode, "MAX_PIXELS", 10**9)
    monkeypatch.setattr(decode, "LARGE_PIXELS", 100_000)
    probe = probing.probe_header(path)
    assert probe.ok and probe.route == decode.ROUTE_PIL and "large" in probe.kinds
    # Large non-JPEGs are reduced on decode when the target is much smaller.
    small = decode.pil_decode(path, target=(30, 40))
    assert small.shape[0] < 300 and small.shape[0] >= 30
    assert tuple(small[0, 0]) == (10, 20, 30)


def test_extensions_and_hidden_files():
    assert decode.is_image_file("x/a.JPG") and decode.is_image_file("a.webp")
    assert not decode.is_image_file("x/.a.jpg") and not decode.is_image_file("notes.txt")
