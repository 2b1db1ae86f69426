"""One pass of a frozen feature model over a dataset: its progress line and the features it returns.

`tfft.training.feature_cache` fills its caches with `compute_features`: the rows of each flip go
straight into one preallocated array (no list of batches, no concatenated second copy).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any, Optional

import keras
import numpy as np


class Progress:
    """Progress of a long pass: Keras' bar on a terminal; plain lines elsewhere (a log file, CI).

    Off a terminal it writes what Keras' own `verbose=2` writes: no ANSI escapes, no carriage
    returns, one line at the start, one every `every` seconds, one at the end.

    Example:
    >>> progress = Progress("computing backbone features once (10 val images)", 10, stream=sys.stdout)
    computing backbone features once (10 val images)
    >>> progress.add(10); progress.done()  # doctest: +ELLIPSIS
    computing backbone features once (10 val images): 10/10 in ... s
    """

    def __init__(self, title: str, total: int, every: float = 30.0, stream: Any = None):
        self.title, self.total, self.every = title, int(total), float(every)
        self.stream = stream if stream is not None else sys.stdout
        self.count = 0
        self.started = self.last = time.monotonic()
        from tfft.training.process_state import interactive

        print(title, file=self.stream, flush=True)
        self.bar = keras.utils.Progbar(self.total, unit_name="image") if interactive(self.stream) else None

    def add(self, count: int) -> None:
        self.count += int(count)
        if self.bar is not None:
            self.bar.add(int(count))
            return
        now = time.monotonic()
        if now - self.last >= self.every and self.count < self.total:
            self.last = now
            print(f"{self.title}: {self.count}/{self.total}, {now - self.started:.0f} s",
                  file=self.stream, flush=True)

    def done(self) -> None:
        if self.bar is None:
            print(f"{self.title}: {self.count}/{self.total} in {time.monotonic() - self.started:.0f} s",
                  file=self.stream, flush=True)


def compute_features(features: Any, batches: Iterable[Any], total: int, title: str,
                     flips: Sequence[tuple[bool, bool]] = ((False, False),),
                     after: Optional[Any] = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """`features(images)` of each batch under each flip `(horizontal, vertical)`: one
    `(features, labels)` pair per flip, rows in the batches' order; prints progress (`Progress`);
    calls `after()` once the pass is done."""
    import tensorflow as tf

    # Rows go straight into one array per flip, sized `total` (grown if the pass is longer): the
    # features are held once, not as a list of batches and then their concatenation.
    rows: list[Optional[np.ndarray]] = [None] * len(flips)
    labels: Optional[np.ndarray] = None
    count = 0
    progress = Progress(title, total)
    for images, y in batches:
        n = int(images.shape[0])
        for k, (horizontal, vertical) in enumerate(flips):
            axes = [axis for axis, on in ((2, horizontal), (1, vertical)) if on]
            flipped = tf.reverse(images, axes) if axes else images
            rows[k] = _put(rows[k], count, np.asarray(keras.ops.convert_to_numpy(features(flipped)), np.float32), total)
        labels = _put(labels, count, np.asarray(y), total)
        count += n
        progress.add(n)
    if after is not None:
        after()
    progress.done()
    y_all = _trim(labels, count)
    return [(_trim(out, count), y_all) for out in rows]


def _put(buffer: Optional[np.ndarray], at: int, block: np.ndarray, total: int) -> np.ndarray:
    """`block` written into `buffer` at row `at`; a buffer of `total` rows made, or doubled, as needed."""
    if buffer is None:
        buffer = np.empty((max(int(total), len(block)),) + block.shape[1:], block.dtype)
    if at + len(block) > len(buffer):
        grown = np.empty((max(2 * len(buffer), at + len(block)),) + buffer.shape[1:], buffer.dtype)
        grown[:at] = buffer[:at]
        buffer = grown
    buffer[at:at + len(block)] = block
    return buffer


def _trim(buffer: Optional[np.ndarray], count: int) -> np.ndarray:
    if buffer is None:
        return np.zeros((0,), np.float32)
    return buffer if len(buffer) == count else buffer[:count].copy()


__all__ = ["Progress", "compute_features"]
