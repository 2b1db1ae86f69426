"""A captioned grid of image tiles drawn with PIL: the top-losses figure every training run writes.

matplotlib takes about 2 s to lay out and save such a grid; PIL pastes the tiles and writes the
captions with its default font in a few milliseconds, which matters because every run (and every
training test) draws one.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from tfft.atomic import write_bytes

GOOD, BAD, INK = (0, 120, 0), (190, 0, 0), (0, 0, 0)
MIN_SIDE = 96  # tiles smaller than this are enlarged (nearest pixel, whole factor) so captions fit
LINE, PAD = 14, 4  # caption line height and padding, px


def _fit(draw, text: str, width: int, font) -> str:
    """`text` cut (with '...') to fit `width` px."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def draw_tile_grid(tiles: Sequence[np.ndarray], captions: Sequence[Sequence[str]], good: Sequence[bool],
                   path: str | os.PathLike, title: Optional[str] = None, cols: int = 4) -> Path:
    """Tiles in rows of `cols`, each above its caption lines (green when `good`, else red), as a PNG.

    Args:
        tiles: arrays [H, W, 3] in 0..255 (all the same size).
        captions: the lines under each tile.
        good: whether each tile's caption is drawn green (right) or red (wrong).
        path: the PNG to write (atomically).
        title: a line above the grid.
        cols: tiles per row.

    Returns:
        The PNG's path.

    Example:
    >>> import numpy as np
    >>> tile = np.zeros((32, 64, 3))
    >>> draw_tile_grid([tile, tile], [["cat -> dog", "p 0.80"], ["cat -> cat", "p 0.90"]], [False, True],
    ...                "/tmp/tile_grid_example.png", title="top losses").name
    'tile_grid_example.png'
    """
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    n = len(tiles)
    height, width = (np.asarray(tiles[0]).shape[:2] if n else (MIN_SIDE, MIN_SIDE))
    scale = max(1, math.ceil(MIN_SIDE / max(1, min(height, width))))
    th, tw = height * scale, width * scale
    lines = max((len(c) for c in captions), default=0)
    cell_w, cell_h = tw + 2 * PAD, th + lines * LINE + 2 * PAD
    cols = max(1, min(int(cols), n or 1))
    rows = max(1, math.ceil(n / cols))
    top = LINE + 2 * PAD if title else 0
    canvas = Image.new("RGB", (cols * cell_w, top + rows * cell_h), "white")
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((PAD, PAD), _fit(draw, title, canvas.width - 2 * PAD, font), fill=INK, font=font)
    for index, tile in enumerate(tiles):
        x, y = (index % cols) * cell_w + PAD, top + (index // cols) * cell_h + PAD
        pixels = np.clip(np.asarray(tile, np.float32), 0, 255).astype(np.uint8)
        if scale > 1:
            pixels = pixels.repeat(scale, axis=0).repeat(scale, axis=1)
        canvas.paste(Image.fromarray(pixels), (x, y))
        for line, text in enumerate(captions[index]):
            draw.text((x, y + th + line * LINE), _fit(draw, text, tw, font),
                      fill=GOOD if good[index] else BAD, font=font)
    if not n:
        draw.text((PAD, top + PAD), "no images", fill=INK, font=font)
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG", compress_level=1)  # zlib level 6 costs ~10x more here
    write_bytes(path, buffer.getvalue())
    return Path(path)
