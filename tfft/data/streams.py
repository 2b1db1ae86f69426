"""How tfft's tf.data streams run: a fixed parallelism and prefetch, and tf.data's autotuner off.

Why off: under TensorFlow 2.21 the autotuner keeps a thread per iterator, and deleting the
iterator often waits for that thread's next optimisation, whose period doubles from 10 ms up to
60 s. Measured here (benchmarks/RESULTS.md, "The autotuner's stall"): an iterator deleted after 3 s
blocked the deleting thread for 2.1 s in about half the tries, one deleted after 12 s for 8.5 s;
with the autotuner off, never. Keras deletes an iterator at the end of every validation pass and
of every `fit`, and tfft's own loops (evaluation, prediction, the scan's checks) at the end of
theirs: with the autotuner on, each could stall for as long as it had run.

The fixed settings: a map over images (the decode) keeps `PARALLEL` calls in flight (at least 4,
or one per core), a map over whole batches (the resize and augmentation, the decoded cache's
gathers) `BATCH_PARALLEL` (at least 4, or one per two cores: a batch in flight holds tens of MB),
and a stream prefetches `PREFETCH` batches. On this project's 2-core machine the epochs take as
long as with the autotuner, without its stall (benchmarks/RESULTS.md); the autotuner also kept
the sum of the stages' parallelism near the core count, which these bounds replace.
"""

from __future__ import annotations

import os


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


PARALLEL = max(4, _cores())  # calls in flight in a parallel map over images (`num_parallel_calls`)
BATCH_PARALLEL = max(4, _cores() // 2)  # ... in a parallel map over whole batches
PREFETCH = 4  # batches a stream prepares ahead


def options():
    """`tf.data.Options` for a tfft stream: the autotuner off (its iterators stall when deleted),
    ordered maps, and none of tf.data's default graph rewrites (the maps are parallel and the
    stream prefetched already; rewriting the graph, the augmentation's hundreds of ops among them,
    cost a fresh iterator about 0.06 s of CPU, a third of an augmented iterator's start-up).

    Example:
    >>> options().autotune.enabled
    False
    """
    import tensorflow as tf

    result = tf.data.Options()
    result.autotune.enabled = False
    result.deterministic = True
    result.experimental_optimization.apply_default_optimizations = False
    return result


__all__ = ["BATCH_PARALLEL", "PARALLEL", "PREFETCH", "options"]
