"""The PIL grid the end-of-run top losses are drawn with."""

from __future__ import annotations

import numpy as np
from PIL import Image

from tfft.reporting.tile_grid import MIN_SIDE, draw_tile_grid


def test_small_tiles_are_enlarged_in_rows_under_a_title(tmp_path):
    tiles = [np.full((32, 64, 3), 200.0)] * 5
    path = draw_tile_grid(tiles, [["given cat", "predicted dog", "p 0.80  loss 1.61"]] * 5, [False] * 5,
                          tmp_path / "grid.png", title="val: top 5", cols=4)
    with Image.open(path) as image:
        width, height = image.size
        pixels = np.asarray(image.convert("RGB"))
    scale = MIN_SIDE // 32  # 32 px tiles drawn 3x
    assert width >= 4 * 64 * scale and height >= 2 * 32 * scale  # 4 columns, 2 rows
    assert (pixels == 200).all(axis=2).sum() == 5 * 32 * 64 * scale * scale  # every tile pasted whole
    assert ((pixels[..., 0] > 150) & (pixels[..., 1] < 60)).any()  # red captions (wrong predictions)


def test_no_tiles_still_writes_a_figure(tmp_path):
    assert draw_tile_grid([], [], [], tmp_path / "empty.png").stat().st_size > 0
