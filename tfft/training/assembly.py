"""One run, resolved once and assembled once: what train, lr-find, augment preview and evaluate share.

Two steps, so that every mistake a config can hold is found before any image is read:

* `resolve(config)` -> `ResolvedRun`: the config validated, the backbone's `BackboneSpec`, the
  image size, the phases with each `unfreeze: top:N` checked against the backbone's blocks, the
  `Task`, and the augmentation's placement rules (MixUp/CutMix need the labels, so they mix in
  the pipeline). No data is scanned and no model is built.
* `assemble(resolved, strategy)` -> `Assembly`: the data scanned into splits (class checks), the
  augmenter, the featurewise/samplewise standardization layers, the classifier (and its
  augmenting training wrapper) built in the strategy's scope with every `from:LAYER` checked,
  the datasets of (images, encoded labels), and `compile` for a phase (task loss with label
  smoothing, task metrics, jit, the phase's optimizer). `tfft train` and `tfft lr-find` build
  their model, data and loss through this one object.

Example:
>>> run = resolve({"model": {"backbone": "vgg16", "weights": None}, "schedule": {"preset": "two_phase"}})
>>> [(p.name, p.unfreeze) for p in run.phases], run.config.schedule.bn, run.task.name
([('head', 'none'), ('finetune', 'top:1')], 'train', 'single_label')
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Union

from tfft.config import Config, load_config
from tfft.errors import UserError
from tfft.schedule.phases import Phase, resolve_phases
from tfft.task import AUTO, Task, check_task_name, data_labels, task_for

Say = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class ResolvedRun:
    """A config resolved and cross-checked, before any data is read.

    Attributes:
        config: the validated `Config` (defaults filled, `schedule.bn: auto` resolved).
        spec: the backbone's `BackboneSpec`.
        image_size: `(height, width)`.
        phases: the resolved phases, each `unfreeze` checked against `spec.blocks`.
        task: the `Task`: `task: auto` is resolved from the source before any image is scanned
            (a `path,labels` manifest with a row of several labels, or `builtin:shapes-multi`,
            is multi-label; see `tfft.data.multilabel.task_of_source`).
    """

    config: Config
    spec: Any
    image_size: tuple[int, int]
    phases: tuple[Phase, ...]
    task: Task

    @property
    def mixing(self) -> bool:
        """MixUp or CutMix is on (they mix labels, so they run in the input pipeline)."""
        return self.config.augment.mixup > 0 or self.config.augment.cutmix > 0

    def augment_placement(self, accelerator: bool) -> str:
        """`augment.placement` resolved: `model` on an accelerator under `auto`, unless mixing."""
        placement = self.config.augment.placement
        if placement == "auto":
            return "model" if accelerator and not self.mixing else "pipeline"
        return placement


def _phase_key(cfg: Config, index: int) -> str:
    if cfg.schedule.phases:
        return f"schedule.phases[{index}].unfreeze"
    return "schedule.finetune_unfreeze" if cfg.schedule.preset == "two_phase" else "schedule.preset"


def check_phases(cfg: Config, spec: Any, phases: tuple[Phase, ...]) -> None:
    """Every `top:N` within the backbone's blocks (a `from:LAYER` is checked once the model exists)."""
    total = len(spec.blocks)
    for index, phase in enumerate(phases):
        kind, _, arg = phase.unfreeze.partition(":")
        if kind == "top" and int(arg) > total:
            raise UserError(_phase_key(cfg, index),
                            f"phase {phase.name!r}: top:{arg} asks for more blocks than {spec.name} has ({total})",
                            f"use top:1..top:{total} or all")


def resolve(config: Union[Config, dict, str, None]) -> ResolvedRun:
    """Validate a config and resolve everything that needs no data (see the module docstring).

    Raises:
        UserError: a bad key or value, an unknown backbone, a `top:N` beyond the backbone's
            blocks, or `augment.placement: model` with MixUp/CutMix.
    """
    from tfft.data.multilabel import task_of_source
    from tfft.models.build import resolve_backbone

    cfg = load_config(config)
    spec = resolve_backbone(cfg.model)
    phases = tuple(resolve_phases(cfg.schedule, len(spec.blocks)))
    check_phases(cfg, spec, phases)
    augment = cfg.augment
    if augment.placement == "model" and (augment.mixup > 0 or augment.cutmix > 0):
        key = "augment.mixup" if augment.mixup > 0 else "augment.cutmix"
        raise UserError(f"{key} with augment.placement: model",
                        "MixUp/CutMix mix the labels too, which a layer inside the model cannot see",
                        "set augment.placement: pipeline (or auto), or drop the mixing")
    named = check_task_name(cfg.task)  # a registered task or auto (a "did you mean" otherwise)
    labels = task_of_source(cfg.data.source, data_labels(named))
    task = labels if named == AUTO else named  # before any image is scanned: the data's labels decide auto
    cfg.task = task  # config.yaml records the resolved task, as it does `schedule.bn: auto`
    from tfft.training.preflight import check_config

    check_config(cfg)  # paths, sizes and a finished teacher run, before any image is read
    return ResolvedRun(cfg, spec, (int(cfg.data.image_size[0]), int(cfg.data.image_size[1])), phases,
                       task_for(task))


class Assembly:
    """The data, augmenter and model of one resolved run (see `assemble`).

    Attributes:
        run: the `ResolvedRun`.
        splits: the scanned `DataSplits`.
        class_names: in output index order.
        augmenter: the `Augmenter` (None when nothing is enabled).
        placement: `pipeline` or `model` (where the augmenter's image steps run).
        model: the classifier that is saved (raw images in, probabilities out).
        train_model: what `fit` trains: `model`, or its augmenting wrapper taking `[image, seed]`.
        teacher: with `distill.teacher`, the `tfft.training.distill.Teacher` (else None); see `distilled`.
    """

    def __init__(self, run: ResolvedRun, strategy: Any, accelerator: bool, say: Say = print):
        self.run = run
        self.cfg = run.config
        self.strategy = strategy
        self.accelerator = accelerator
        self.say = say
        self.task = run.task  # with `class_weight: balanced`, re-made from the training counts (see _data)

    # -- data --------------------------------------------------------------------------------
    def _data(self) -> None:
        from tfft import data

        cfg = self.cfg
        from tfft.data.rules import verdict

        self.splits = data.load_splits(cfg.data, cfg.seed, task=self.run.task.data_labels)
        self.class_names = list(self.splits.class_names)
        found = verdict(self.splits)  # the rules `tfft data check` applies too
        found.raise_first()
        for warning in found.warnings:
            self.say(f"warning: {warning['message']}")
        self.num_train = len(self.splits.splits["train"])
        self.has_val = "val" in self.splits.splits and len(self.splits.splits["val"]) > 0
        if cfg.training.class_weight == "balanced":
            self.task = self.run.task.balanced(self.splits.counts("train"), self.class_names, self.num_train)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def _augmenter(self) -> None:
        from tfft.augment import build_augmenter

        self.augmenter = build_augmenter(self.cfg.augment, self.run.image_size, self.num_classes)
        self.placement = self.run.augment_placement(self.accelerator) if self.augmenter is not None else "pipeline"

    def standardization_layers(self) -> list:
        """IDG's featurewise/samplewise standardizations, as layers inside the saved model."""
        from tfft.augment import standardize

        augment = self.cfg.augment
        if not (standardize.wants_featurewise(augment) or standardize.wants_samplewise(augment)):
            return []
        stats = None
        if standardize.wants_featurewise(augment):
            from tfft import data

            images = data.make_dataset(self.splits, "train", self.cfg.data, seed=self.cfg.seed, training=False)
            stats = standardize.fit_statistics(augment, (batch for batch, _ in images))
            self.say(f"featurewise statistics from {self.num_train} training images: "
                     f"mean {[round(float(m), 2) for m in stats['mean']]}, "
                     f"std {[round(float(v), 2) for v in stats['std']]}")
        if self.cfg.model.weights == "imagenet":
            self.say("warning: augment standardization moves pixels away from the 0-255 range the "
                     f"{self.cfg.model.backbone} imagenet preprocessing expects")
        return standardize.standardization_layers(augment, stats)

    # -- model -------------------------------------------------------------------------------
    def _model(self) -> None:
        import keras

        from tfft.models.build import build_classifier, get_backbone
        from tfft.schedule.freezing import selected_layers

        extra = self.standardization_layers()
        with self.strategy.scope():
            self.model = build_classifier(self.cfg.model, self.num_classes, self.run.image_size, extra,
                                          task=self.task, spec=self.run.spec)
            if self.augmenter is not None and self.placement == "model":
                from tfft.augment import AugmentLayer

                image = keras.Input(self.model.input_shape[1:], name="image")
                seed = keras.Input((2,), dtype="int32", name="seed")
                augmented = AugmentLayer(self.augmenter)([image, seed])
                self.train_model = keras.Model([image, seed], self.model(augmented), name="train_wrapper")
            else:
                self.train_model = self.model
        self.teacher = None
        teacher_dir = self.cfg.distill.teacher
        if teacher_dir:  # after the student, so that its layer and variable names are a plain run's
            from pathlib import Path

            from tfft.training.distill import Teacher

            with self.strategy.scope():
                self.teacher = Teacher(Path(teacher_dir).expanduser(), self.class_names, self.run.image_size)
        backbone = get_backbone(self.model)
        for phase in self.run.phases:  # `from:LAYER` needs the built backbone; before any phase trains
            if phase.unfreeze.startswith("from:"):
                selected_layers(backbone, self.run.spec, phase.unfreeze)

    # -- datasets ----------------------------------------------------------------------------
    def dataset(self, split: str, epochs: Optional[range], in_pipeline: bool = False, skip: int = 0,
                input_context: Any = None, last_read: bool = False) -> Any:
        """Batches of (images, encoded labels): training ones (`epochs` given) augmented.

        Args:
            split: `train`, `val` or `test`.
            epochs: the data epochs to stream back to back (None: one pass in file order, no augmentation).
            in_pipeline: augment in the pipeline even when the model placement is chosen (feature cache).
            skip: leave out the first batches of the first epoch (resuming inside it).
            input_context: a worker's `tf.distribute.InputContext` (`make_dataset`: its own files
                of a source that shards by file).
            last_read: the run reads no training batch after these: `performance.decoded_cache:
                auto` starts no store for them (one filled by an earlier phase is still read).
        """
        import tensorflow as tf

        from tfft import data

        task, num_classes = self.task, self.num_classes
        training = epochs is not None
        augmenter = self.augmenter if training else None
        model_placement = augmenter is not None and self.placement == "model" and not in_pipeline
        # In the pipeline the warp runs on each batch as decoded, fused with the resize; the rest after.
        on_decoded, on_batch = (augmenter.pipeline_steps() if augmenter is not None and not model_placement
                                else (None, None))

        def prepare(images, labels, seed):
            labels = task.encode(labels, num_classes)
            if on_batch is not None:
                images, labels = on_batch(images, labels, seed)
            if model_placement:  # the wrapper's `seed` input: one row per example, as Keras batches inputs
                seeds = tf.tile(tf.reshape(tf.cast(seed, tf.int32), [1, 2]), [tf.shape(images)[0], 1])
                return (images, seeds), labels
            return images, labels

        decoded = decoded_cache_policy(self.cfg.performance)
        if last_read and decoded.mode == "auto":
            decoded = dataclasses.replace(decoded, start=False)
        dataset = data.make_dataset(self.splits, split, self.cfg.data, seed=self.cfg.seed, training=training,
                                    epochs=epochs, augment_fn=prepare if training else None, skip_batches=skip,
                                    on_decoded=on_decoded, decoded_cache=decoded, input_context=input_context)
        if not training:
            dataset = dataset.map(lambda images, labels: (images, task.encode(labels, num_classes)))
        return dataset

    def distilled(self, model: Any, cached: bool = False) -> Any:
        """What a phase fits: `model` itself, or in a distilled run its `DistillationModel`.

        Args:
            model: `train_model`, or a cached phase's head ending in logits (`cached`, whose targets
                carry the teacher's logits: see `Teacher.with_targets`).
            cached: `model` is a cached-feature head.
        """
        if self.teacher is None:
            return model
        from tfft.augment import AugmentLayer
        from tfft.models.build import logits_model
        from tfft.training.distill import DistillationModel

        settings = self.cfg.distill
        augment = None
        if not cached and model is not self.model:  # the augmenting wrapper: `[image, seed]` in
            augment = next(layer for layer in model.layers if isinstance(layer, AugmentLayer))
        with self.strategy.scope():
            student = model if cached else logits_model(self.model)
            return DistillationModel(student, None if cached else self.teacher.model, settings.temperature,
                                     settings.alpha, self.num_classes, augment=augment,
                                     activation=self.task.activation)

    def class_weight(self) -> Optional[dict[int, float]]:
        if self.cfg.training.class_weight != "balanced":
            return None
        return self.task.class_weight(self.splits.counts("train"), self.class_names)

    @property
    def jit_compile(self) -> Any:
        return {"on": True, "off": False, "auto": "auto" if self.accelerator else False}[
            self.cfg.performance.jit_compile]

    def compile(self, model: Any, optimizer: Any, metrics: bool = True) -> None:
        """Compile `model` (the classifier, its wrapper or a cached-feature head) with the task's loss."""
        task = self.task
        with self.strategy.scope():
            model.compile(optimizer=optimizer, loss=task.loss(self.cfg.training.label_smoothing),
                          metrics=task.metrics(self.num_classes, self.cfg.evaluate.top_k) if metrics else None,
                          jit_compile=self.jit_compile, steps_per_execution=self.cfg.performance.steps_per_execution)
            # Built here, Keras need not build it inside the first step (which traces it twice).
            optimizer.build(model.trainable_variables)


def assemble(run: ResolvedRun, strategy: Any = None, accelerator: Optional[bool] = None,
             say: Say = print) -> Assembly:
    """Scan the data and build the augmenter and the model of a resolved run.

    Args:
        run: from `resolve`.
        strategy: the tf.distribute strategy whose scope holds the model (default: the current one).
        accelerator: a GPU or TPU is present (default: asked of TensorFlow).
        say: where progress lines go.

    Raises:
        UserError: fewer than 2 classes, no training images, or a `from:LAYER` naming no layer.
    """
    import tensorflow as tf

    from tfft.training import distribute

    strategy = strategy if strategy is not None else tf.distribute.get_strategy()
    accelerator = distribute.has_accelerator() if accelerator is None else accelerator
    assembly = Assembly(run, strategy, accelerator, say)
    assembly._data()  # noqa: SLF001 - this module's class, step by step
    assembly._augmenter()  # noqa: SLF001 - this module's class, step by step
    assembly._model()  # noqa: SLF001 - this module's class, step by step
    return assembly


def decoded_cache_policy(performance: Any) -> Any:
    """`performance.decoded_cache` and its budget as `make_dataset` takes them; beyond the budget the
    decoded images go to the disk cache, `decoded/` beside the feature store's `features/`."""
    from tfft.data.decoded_cache import DecodedCachePolicy
    from tfft.training.feature_store import default_root

    return DecodedCachePolicy(performance.decoded_cache, performance.decoded_cache_max_gb,
                              default_root().parent / "decoded")


def build_dataset(cfg: Any, split: str = "train", *, epoch: int = 0) -> Any:
    """The public data API (`tfft.build_data`): a batched dataset of (images float32 0..255, labels int32).

    For `split == "train"` the order is epoch `epoch`'s stateless training order (the same
    batches `tfft train` uses); with `augment.placement: pipeline` the images are augmented.
    Other splits are in their fixed order, unaugmented. It is defined here, above both
    `tfft.data` and `tfft.augment`, because it needs the two.

    Args:
        cfg: a `tfft.config.Config` (or anything `tfft.load_config` accepts).
        split: "train", "val" or "test".
        epoch: which training epoch's order (and augmentation) to yield.

    Returns:
        A `tf.data.Dataset`, one pass (`tfft.build_data`'s docstring has an example).
    """
    from tfft import data
    from tfft.augment import build_augmenter

    cfg = load_config(cfg)
    splits = data.load_splits(cfg.data, cfg.seed, task=data_labels(cfg.task))
    training = split == "train"
    on_decoded = augment_fn = None
    if training and cfg.augment.placement == "pipeline":
        augmenter = build_augmenter(cfg.augment, tuple(cfg.data.image_size), splits.num_classes)
        if augmenter is not None:  # None when nothing is enabled
            on_decoded, augment_fn = augmenter.pipeline_steps()
    return data.make_dataset(splits, split, cfg.data, seed=cfg.seed, training=training,
                             epochs=range(int(epoch), int(epoch) + 1), augment_fn=augment_fn,
                             on_decoded=on_decoded)
