"""The input pipeline's costs, said once at the start of a phase when it, not the model, is the slower side.

At the start of a phase the training pipeline is timed alone on a throwaway iterator (its
start-up: building the iterator and its first batch; then a few batches), and the first steps of
the phase are timed as Keras runs them. When a step takes no longer than the pipeline needs for
a batch, the model waits for its data: one line then says, in plain words, what the pipeline
costs to start, per epoch and per image. Otherwise nothing is printed.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Optional

import keras

# Phases shorter than this many batches an epoch are not timed: their pipeline's cost is small
# beside the run's own start-up, and the probe would add to it.
MIN_BATCHES = 8
PROBE_BATCHES = 3
# A step that takes at most this many times the pipeline's time for a batch is waiting for its
# data (the two overlap: a step takes the longer of the two, and a shared machine adds noise).
NEAR = 1.5


@dataclasses.dataclass(frozen=True)
class InputCost:
    """What a training pipeline costs alone: start-up (s), per batch (s), images per epoch and batch."""

    startup_s: float
    batch_s: float
    images: int
    batch_size: int

    def words(self, step_s: float) -> str:
        """The line printed when the pipeline is the slower side (`step_s`: a training step's seconds).

        Example:
        >>> InputCost(0.8, 0.064, 800, 32).words(0.05)[:60]
        'input pipeline: the slower side (a batch takes 0.064 s to pr'
        """
        per_image = self.batch_s / self.batch_size
        return (f"input pipeline: the slower side (a batch takes {self.batch_s:.3f} s to prepare, a training "
                f"step {step_s:.3f} s): {self.startup_s:.1f} s to start, about "
                f"{per_image * self.images:.1f} s an epoch of {self.images} images, "
                f"{1000 * per_image:.2f} ms an image")


def probe(dataset: Any, images: int, batch_size: int, batches: int = PROBE_BATCHES) -> InputCost:
    """Time `dataset` alone: a fresh iterator to its first batch, then `batches` more.

    Example:
    >>> import tensorflow as tf
    >>> cost = probe(tf.data.Dataset.range(10).batch(2), images=10, batch_size=2)
    >>> cost.images, cost.startup_s >= 0
    (10, True)
    """
    start = time.perf_counter()
    iterator = iter(dataset)
    next(iterator)
    first = time.perf_counter()
    taken = 0
    for _ in range(batches):
        try:
            next(iterator)
        except StopIteration:
            break
        taken += 1
    end = time.perf_counter()
    del iterator
    return InputCost(first - start, (end - first) / max(taken, 1), int(images), int(batch_size))


class InputCostReport(keras.callbacks.Callback):
    """Print `cost.words(...)` once, after the phase's first steps, when a step is no slower than a batch
    (within `NEAR`).

    Args:
        cost: the pipeline's `probe`.
        steps: how many steps to time (after the first, which compiles).
        say: where the line goes.
    """

    def __init__(self, cost: InputCost, steps: int = 5, say: Callable[[str], None] = print):
        super().__init__()
        self.cost, self.steps, self.say = cost, int(steps), say
        self._seen, self._start, self.step_s = 0, None, None  # step_s: the timed steps' mean, once known

    def on_train_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        if self.step_s is not None:
            return
        self._seen += 1
        if self._seen == 1:  # the first step compiles: time from its end
            self._start = time.perf_counter()
        elif self._seen == 1 + self.steps:
            self.step_s = (time.perf_counter() - self._start) / self.steps
            if self.step_s <= NEAR * self.cost.batch_s:
                self.say(self.cost.words(self.step_s))


def report_for(dataset: Any, images: int, batch_size: int, batches_per_epoch: int,
               say: Callable[[str], None] = print) -> Optional[InputCostReport]:
    """The phase's `InputCostReport`, or None for a phase too short to be worth timing.

    Example:
    >>> report_for(None, images=40, batch_size=8, batches_per_epoch=5) is None
    True
    """
    if batches_per_epoch < MIN_BATCHES:
        return None
    return InputCostReport(probe(dataset, images, batch_size), say=say)
