"""JPEG downscale-on-decode (`data.fast_decode`): the rule, its quality, and the same pixels in
the training pipeline, evaluate/predict and the in-graph (SavedModel) decoder, on large JPEGs."""

from __future__ import annotations

import numpy as np
import pytest

from tfft.config import DataConfig
from tfft.data import decode
from tfft.data import probe as probing

SIZE = (96, 128)  # 1600x1200 decodes at 1/8 for it (200x150 >= 1.5 * 128x96), at 1/4 for 200x260, 1/2 for 300x400


def test_dct_ratio_rule():
    assert decode.dct_ratio(3024, 4032, (224, 224)) == 8  # 504x378 >= 1.5 * 224
    assert decode.dct_ratio(1512, 2016, (224, 224)) == 4  # 1/8 would leave 189 < 336
    assert decode.dct_ratio(1200, 1600, (224, 224)) == 2
    assert decode.dct_ratio(375, 500, (224, 224)) == 1
    assert decode.dct_ratio(1260, 1620, (96, 128)) == 4  # 8 does not divide 1260: the grid would shift
    assert decode.dct_ratio(1201, 1601, (96, 128)) == 1
    assert decode.dct_ratio(3024, 4032, (224, 224), fast_decode=False) == 1
    assert decode.dct_ratio(3024, 4032, None) == 1
    assert decode.fast_decode_on(DataConfig()) and not decode.fast_decode_on(DataConfig(fast_decode="off"))
    with pytest.raises(Exception, match="fast_decode"):
        DataConfig(fast_decode="sometimes")
    from tfft.config import load_config

    assert load_config({}, overrides=["data.fast_decode=off"]).data.fast_decode == "off"  # YAML's off: false


def test_in_graph_rule_and_header_only_size(large_jpegs):
    """The in-graph decoder reduces exactly as `dct_ratio` says, for each target."""
    import tensorflow as tf

    data = tf.constant(large_jpegs["plain.jpg"].read_bytes())
    for size, ratio in [(SIZE, 8), ((200, 260), 4), ((300, 400), 2), ((600, 800), 1)]:
        assert decode.dct_ratio(1200, 1600, size) == ratio
        shape = decode.decode_bytes_native(data, size).shape
        assert tuple(shape) == (1200 // ratio, 1600 // ratio, 3), size
    assert tuple(decode.decode_bytes_native(data, SIZE, fast_decode=False).shape) == (1200, 1600, 3)
    odd = tf.constant(large_jpegs["odd_size.jpg"].read_bytes())
    assert tuple(decode.decode_bytes_native(odd, SIZE).shape) == (1196 // 4, 1596 // 4, 3)


@pytest.mark.parametrize("size", [SIZE, (200, 260), (300, 400)], ids=["1/8", "1/4", "1/2"])
def test_quality_against_full_decode(large_jpegs, size):
    """Within 3 grey levels (mean absolute) of a full decode plus antialiased resize, on a detailed
    picture, at each reduction; and `fast_decode=False` is that full decode exactly."""
    import tensorflow as tf

    data = large_jpegs["plain.jpg"].read_bytes()
    reference = decode.resize(tf.io.decode_jpeg(data, channels=3), size).numpy()
    fast = decode.decode_and_resize(tf.constant(data), size).numpy()
    off = decode.decode_and_resize(tf.constant(data), size, fast_decode=False).numpy()
    np.testing.assert_array_equal(off, reference)
    error = np.abs(fast - reference).mean()
    assert 0.05 < error < 3.0, error  # not the full decode (so the reduction ran), yet close to it


def test_pil_route_reduces_and_keeps_orientation_and_colour(large_jpegs):
    """CMYK and EXIF-rotated JPEGs (PIL's route) are reduced too, rotated and converted as before."""
    from PIL import Image, ImageOps

    for name in ("rotated.jpg", "cmyk.jpg"):
        path = large_jpegs[name]
        assert probing.probe_header(path).route == decode.ROUTE_PIL
        reduced = decode.pil_decode(path, target=SIZE)
        full = decode.pil_decode(path, target=SIZE, fast_decode=False)
        assert reduced.shape == (150, 200, 3) and full.shape == (1200, 1600, 3), name
        upright = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
        np.testing.assert_array_equal(full, upright)
        small = np.asarray(Image.fromarray(full).reduce(8), np.float32)
        assert np.abs(reduced.astype(np.float32) - small).mean() < 3.0, name  # upright, same colours


@pytest.mark.parametrize("fast_decode", ["auto", "off"])
def test_pipeline_evaluate_and_predict_decode_the_same_pixels(large_jpegs, fast_decode):
    """Training batches, evaluate's per-file pipeline and predict's read_image agree bitwise on
    every large JPEG kind, with the switch on and off."""
    from tfft.data import load_splits, make_dataset
    from tfft.data.files import decoded_files, read_image

    folder = large_jpegs["plain.jpg"].parent.parent
    cfg = DataConfig(source=str(folder), image_size=SIZE, batch_size=8, val_split=0.0, fast_decode=fast_decode)
    splits = load_splits(cfg, seed=0)
    part = splits.splits["train"]
    assert len(part) == len(large_jpegs)
    images = np.concatenate([x for x, _ in make_dataset(splits, "train", cfg, seed=0, training=False)
                             .as_numpy_iterator()])
    fast = fast_decode == "auto"
    predicted = np.stack([read_image(p, SIZE, fast_decode=fast) for p in part.paths])
    evaluated = {int(i): x for x, i in decoded_files(list(part.paths), SIZE, fast_decode=fast).as_numpy_iterator()}
    np.testing.assert_array_equal(images, predicted)
    np.testing.assert_array_equal(images, np.stack([evaluated[i] for i in range(len(part))]))
    if fast:  # the rotated file is upright and the CMYK one in colour: both match the plain file
        plain = images[list(map(str, part.paths)).index(str(large_jpegs["plain.jpg"]))]
        for name in ("rotated.jpg", "cmyk.jpg", "progressive.jpg"):
            other = images[list(map(str, part.paths)).index(str(large_jpegs[name]))]
            assert np.abs(other - plain).mean() < 3.0, name


def test_one_decode_op_when_the_headers_allow(large_jpegs, tmp_path):
    """A split whose files share one reduction is decoded by one op (no branch in the element graph),
    to the same pixels as the general decoder; mixed reductions keep the general one."""
    import shutil

    from tfft.data import load_splits, make_dataset, pipeline
    from tfft.data.files import read_image

    # 1600x1200 at 1/8 is 200x150 (< 4x 96x128: batched as decoded); 1596x1196 at 1/4 is not.
    for names, one_op, large in ((["plain.jpg", "progressive.jpg"], True, False),
                                 (["plain.jpg", "odd_size.jpg"], False, True)):
        folder = tmp_path / "-".join(names)
        (folder / "a").mkdir(parents=True)
        for name in names:
            shutil.copy(large_jpegs[name], folder / "a" / name)
        cfg = DataConfig(source=str(folder), image_size=SIZE, batch_size=4, val_split=0.0)
        splits = load_splits(cfg, seed=0)
        part = splits.splits["train"]
        op, may_be_large = pipeline.files_plan(part, SIZE, True)
        assert (op is not None) is one_op and may_be_large is large
        images = next(make_dataset(splits, "train", cfg, seed=0, training=False).as_numpy_iterator())[0]
        np.testing.assert_array_equal(images, np.stack([read_image(p, SIZE) for p in part.paths]))
