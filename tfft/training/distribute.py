"""Choose and describe the tf.distribute strategy and the precision policy.

`data.batch_size` is the GLOBAL batch: each of R replicas sees batch_size / R examples a step.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from tfft import compat
from tfft.config import DistributeConfig, PerformanceConfig
from tfft.data.index import is_chief_task  # the one rule (TF_CONFIG alone); run.py asks it here
from tfft.errors import UserError


def configure_virtual_cpus(count: int) -> None:
    """Split the CPU into `count` logical devices (before TensorFlow initialises its devices)."""
    if count <= 1:
        return
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    try:
        current = tf.config.get_logical_device_configuration(cpus[0])
        if current and len(current) == count:
            return
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(count)])
    except RuntimeError as exc:
        raise UserError("distribute.virtual_cpus",
                        f"cannot split the CPU into {count} devices after TensorFlow started ({exc})",
                        "set it before anything else runs in this Python process (a fresh process)") from None


def tpu_address(cfg: DistributeConfig) -> str | None:
    """The TPU to connect to, for `TPUClusterResolver(tpu=...)`: `distribute.tpu_address`, else a
    Colab TPU runtime's `COLAB_TPU_ADDR` (host:port, as `grpc://host:port`), else `TPU_NAME`
    (a Cloud TPU's name); None when none is set.

    Example:
    >>> tpu_address(DistributeConfig(tpu_address="my-tpu"))
    'my-tpu'
    """
    if cfg.tpu_address:
        return cfg.tpu_address
    colab = os.environ.get("COLAB_TPU_ADDR", "").strip()
    if colab:
        return colab if "://" in colab else f"grpc://{colab}"
    return os.environ.get("TPU_NAME", "").strip() or None


def make_strategy(cfg: DistributeConfig) -> Any:
    """Build the strategy `distribute.strategy` asks for.

    `auto`: a TPU when one is named (`distribute.tpu_address`, `COLAB_TPU_ADDR` or `TPU_NAME`:
    `tpu_address`), MirroredStrategy on more than one GPU or more than one virtual CPU, the
    default strategy otherwise.
    """
    import tensorflow as tf

    configure_virtual_cpus(cfg.virtual_cpus)
    kind = cfg.strategy
    tpu = tpu_address(cfg)
    if kind == "auto":
        if tpu:
            kind = "tpu"
        elif len(tf.config.list_logical_devices("GPU")) > 1 or cfg.virtual_cpus > 1:
            kind = "mirrored"
        elif os.environ.get("TF_CONFIG"):
            kind = "multi_worker"
        else:
            kind = "none"
    if kind == "none":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if kind == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise UserError("distribute.strategy", "multi_worker needs the TF_CONFIG environment variable",
                            'set TF_CONFIG=\'{"cluster": {"worker": [...]}, "task": {"type": "worker", "index": 0}}\'')
        return tf.distribute.MultiWorkerMirroredStrategy()
    if kind == "tpu":
        try:
            # None: TensorFlow resolves the TPU itself (a Cloud TPU VM's local chips)
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as exc:
            raise UserError("distribute.strategy", f"no TPU reachable at {tpu or 'the local TPU'} ({exc})",
                            "on Colab choose a TPU runtime; elsewhere set distribute.tpu_address") from None
        return tf.distribute.TPUStrategy(resolver)
    raise AssertionError(kind)


def is_chief(strategy: Any) -> bool:
    """True on the worker that writes the run directory (always true without multi_worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not os.environ.get("TF_CONFIG"):
        return True
    return is_chief_task()


@contextlib.contextmanager
def training_under(strategy: Any, *models_to_train: Any) -> Iterator[None]:
    """Train the models (and the models inside them) under `strategy`; afterwards predict locally.

    Keras 3 runs `predict_on_batch(x)` through `strategy.run` with `x` undistributed, so under
    MirroredStrategy every replica predicts the whole batch (2 replicas: 32 rows for 16 images),
    and under MultiWorkerMirroredStrategy a chief-only prediction waits on collectives the other
    workers never join. Between and after the `fit` calls the models use the default strategy:
    their mirrored variables are read as plain values, in this process only.
    """
    import keras
    import tensorflow as tf

    replicated = int(getattr(strategy, "num_replicas_in_sync", 1)) > 1 and not type(strategy).__name__.startswith("TPU")
    if not replicated:  # the default strategy (and TPUs): Keras as it is
        yield
        return
    models = [layer for model in models_to_train for layer in compat.flatten_layers(model)
              if isinstance(layer, keras.Model)]
    for m in models:
        compat.set_distribute_strategy(m, strategy)
    try:
        yield
    finally:
        local = tf.distribute.get_strategy()
        for m in models:
            compat.set_distribute_strategy(m, local)
            m.predict_function = None


def resolve_precision(perf: PerformanceConfig, strategy: Any) -> str:
    """`auto`: mixed_float16 on GPUs of compute capability 7.0+, mixed_bfloat16 on TPU, else float32."""
    import tensorflow as tf

    if perf.precision != "auto":
        return perf.precision
    if type(strategy).__name__.startswith("TPU"):
        return "mixed_bfloat16"
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        if details.get("compute_capability", (0, 0)) >= (7, 0):
            return "mixed_float16"
    return "float32"


def applied_precision(model: Any) -> str:
    """The dtype policy the backbone's weighted layers compute under, as environment.json reports
    it: one name (`mixed_float16`), or the names joined by `+` when they differ.

    Example:
    >>> from tfft.config import ModelConfig
    >>> from tfft.models.build import build_classifier
    >>> applied_precision(build_classifier(ModelConfig(backbone="mobilenet_v3_small", weights=None), 3, (32, 32)))
    'float32'
    """
    from tfft.models.build import get_backbone

    names = {layer.dtype_policy.name for layer in get_backbone(model).layers if layer.weights}
    return "+".join(sorted(names)) or "float32"


def has_accelerator() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU") or tf.config.list_logical_devices("TPU"))


def strategy_name(strategy: Any) -> str:
    """The public name of the strategy (tf.distribute.MultiWorkerMirroredStrategy's class is
    CollectiveAllReduceStrategy; the default strategy's is _DefaultDistributionStrategy)."""
    name = type(strategy).__name__
    return {"CollectiveAllReduceStrategy": "MultiWorkerMirroredStrategy"}.get(name, name)


def environment(strategy: Any, precision: str) -> dict[str, Any]:
    """What ran: for `environment.json`."""
    import platform

    import keras
    import tensorflow as tf

    from tfft.version import __version__

    return {
        "strategy": strategy_name(strategy),
        "replicas": int(strategy.num_replicas_in_sync),
        "precision": precision,
        "devices": [d.name for d in tf.config.list_logical_devices()],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tfft": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
