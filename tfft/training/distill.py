"""Knowledge distillation: a run trains its model as the student of a finished run's model.

`distill: {teacher: RUN_DIR, temperature: T, alpha: a}` makes the loss

    a x task loss + (1 - a) x T^2 x KL(softmax(teacher logits / T) || softmax(student logits / T))

(Hinton et al. 2015). The KL term is Keras' own `keras.distillation.LogitsDistillation` with
`keras.losses.KLDivergence()` passed explicitly (its default, the string `"kl_divergence"`,
is applied to the raw logits instead of the softened probabilities in Keras 3.15).

The training step is `DistillationModel`, a small `keras.Model` around the phase's fit model,
rather than `keras.distillation.Distiller`: the Distiller runs the teacher on the student's
inputs, which in tfft are not always images (a cached phase trains on backbone features or on
the activations of a frozen bottom; a `placement: model` phase feeds `[images, seeds]` and
augments inside), it wants the student to output logits (the task loss and metrics of a tfft
run are on probabilities), and it replaces the compiled loss. `DistillationModel` keeps the
assembled run's compile (task loss with label smoothing, class weights, metrics) and adds:

* the teacher, frozen and called in inference mode on the batch the student sees (after the
  model-placement augmentation; resized inside to the teacher's input size when it differs);
* or, in a cached phase (frozen and unaugmented), the teacher's logits cached like the features:
  they ride in the targets as `[one-hot labels, teacher logits]` (see `Teacher.with_targets`);
* `task_loss` and `distillation_loss` in the logs (so in history.csv), `loss` being their mix.

The student saved to model.keras is the run's own classifier: the teacher is never inside it.

Example:
>>> import numpy as np, keras
>>> student = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
>>> model = DistillationModel(student, None, temperature=2.0, alpha=0.5, num_classes=3)
>>> model.compile(loss=keras.losses.CategoricalCrossentropy())
>>> targets = np.concatenate([np.eye(3)[[0, 2]], [[2.0, 0.0, -1.0], [0.0, 0.0, 3.0]]], axis=1)
>>> float(model.evaluate(np.ones((2, 4)), targets, verbose=0, return_dict=True)["task_loss"]) > 0
True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import keras

from tfft import layout
from tfft.errors import UserError
from tfft.training.preflight import TEACHER_KEY

KEY = TEACHER_KEY


class Teacher:
    """A finished run's model as the teacher of a run: images in, logits out, frozen.

    Args:
        run_dir: the teacher run (checked by `tfft.training.preflight.check_teacher`).
        class_names: the student's classes, in output order: the teacher's labels.txt must list
            the same ones in the same order.
        image_size: the student's input size; the teacher resizes to its own inside.

    Raises:
        UserError: naming `distill.teacher`, when its labels differ from the student's, or its
            model.keras does not load in safe mode (a `Lambda` or custom layer).
    """

    def __init__(self, run_dir: Path, class_names: list[str], image_size: tuple[int, int]):
        from tfft.backbones import load_saved_model
        from tfft.models.build import logits_model
        from tfft.task import LOGITS_LAYER

        labels = [n for n in (run_dir / layout.LABELS).read_text(encoding="utf-8").splitlines() if n.strip()]
        if labels != list(class_names):
            raise UserError(KEY, f"{run_dir} was trained on the labels {labels}, this run's data has "
                            f"{list(class_names)}", "distill from a teacher trained on the same classes "
                            "(the same names, in the same order)")
        self.run_dir = run_dir
        model = load_saved_model(run_dir / layout.MODEL, KEY, "point distill.teacher at a run whose model.keras "
                                 "holds only built-in Keras layers (safe mode refuses Lambda and custom layers)")
        model.trainable = False
        names = [layer.name for layer in model.layers]
        if LOGITS_LAYER in names:
            logits = logits_model(model)
        else:  # an ensemble's averaged probabilities: their logs are logits (softmax(log p / T) is exact)
            x = keras.layers.Lambda(lambda p: keras.ops.log(keras.ops.maximum(p, 1e-12)))(model.output)
            logits = keras.Model(model.inputs, x)
        own = tuple(int(d) for d in model.input_shape[1:3])
        size = tuple(int(d) for d in image_size)
        image = keras.Input(size + (3,), name="teacher_image")
        x = image
        if own != size:
            shrink = own[0] < size[0] / 1.5 or own[1] < size[1] / 1.5
            x = keras.layers.Resizing(own[0], own[1], antialias=shrink, name="teacher_resize")(x)
        self.model = keras.Model(image, logits(x), name="teacher")
        self.model.trainable = False
        self.input_size = own
        self._logits = None

    def describe(self) -> str:
        size = "x".join(map(str, self.input_size))
        return f"teacher {self.run_dir} ({self.model.count_params():,} params, input {size})"

    def logits(self, images: Any) -> Any:
        """The teacher's logits of a batch of images (inference mode)."""
        import tensorflow as tf

        if self._logits is None:
            self._logits = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)
        return self._logits(images)

    def with_targets(self, dataset: Any) -> Any:
        """A dataset of (images, one-hot labels) as (images, [labels, teacher logits]) (a feature cache's
        passes: the cached rows then carry the teacher's logits, in the same order)."""
        import tensorflow as tf

        return dataset.map(lambda x, y: (x, tf.concat([tf.cast(y, tf.float32), self.logits(x)], axis=-1)))


class DistillationModel(keras.Model):
    """The fit model of a distilled phase: `alpha` x the compiled task loss + (1 - alpha) x the
    temperature-softened KL to the teacher (see the module docstring).

    Args:
        student: inputs -> the student's logits (the classifier's, or a cached head's).
        teacher: images -> teacher logits (`Teacher.model`), or None when the targets carry them
            (`[one-hot labels, teacher logits]`, a cached phase).
        temperature: T.
        alpha: the weight of the task loss.
        num_classes: C (the targets' first C columns are the labels).
        augment: the run's `AugmentLayer` when it augments inside the model (`[images, seeds]` in):
            student and teacher then see the same augmented images.
        activation: the task's activation of the logits (softmax).
    """

    def __init__(self, student: keras.Model, teacher: Optional[keras.Model], temperature: float, alpha: float,
                 num_classes: int, augment: Optional[keras.layers.Layer] = None, activation: str = "softmax",
                 **kwargs: Any):
        super().__init__(name=kwargs.pop("name", "distillation"), **kwargs)
        self.student = student
        self.teacher = teacher
        self.augment = augment
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.num_classes = int(num_classes)
        self.to_probabilities = keras.layers.Activation(activation, dtype="float32", name="student_probabilities")
        self.kd = keras.distillation.LogitsDistillation(temperature=self.temperature,
                                                        loss=keras.losses.KLDivergence())
        self.task_loss_tracker = keras.metrics.Mean(name="task_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(name="distillation_loss")

    def call(self, inputs: Any, training: bool = False) -> dict[str, Any]:
        images = self.augment(inputs, training=training) if self.augment is not None else inputs
        logits = self.student(images, training=training)
        out = {"probabilities": self.to_probabilities(logits), "student_logits": logits}
        if self.teacher is not None:
            out["teacher_logits"] = keras.ops.stop_gradient(self.teacher(images, training=False))
        return out

    def _split(self, y: Any, y_pred: dict[str, Any]) -> tuple[Any, Any]:
        if self.teacher is None:
            return y[:, :self.num_classes], y[:, self.num_classes:]
        return y, y_pred["teacher_logits"]

    def compute_loss(self, x: Any = None, y: Any = None, y_pred: Any = None, sample_weight: Any = None,
                     training: bool = True) -> Any:
        import tensorflow as tf

        if y_pred is None:
            y_pred = self(x, training=training)
        labels, teacher = self._split(y, y_pred)
        # Keras' loss reduction divides both terms by the replicas (their gradients are summed);
        # the trackers log them per example, as Keras' own loss tracker does.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        task = super().compute_loss(x, labels, y_pred["probabilities"], sample_weight, training)
        kd = self.kd.compute_loss(keras.ops.cast(teacher, "float32"),
                                  keras.ops.cast(y_pred["student_logits"], "float32"))
        batch = keras.ops.shape(y_pred["student_logits"])[0]
        self.task_loss_tracker.update_state(task * replicas, sample_weight=batch)
        self.distillation_loss_tracker.update_state(kd * replicas, sample_weight=batch)
        return self.alpha * task + (1.0 - self.alpha) * kd

    def compute_metrics(self, x: Any, y: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        labels, _ = self._split(y, y_pred)
        return super().compute_metrics(x, labels, y_pred["probabilities"], sample_weight)


def distillation_loss(teacher_logits: Any, student_logits: Any, labels: Any, temperature: float,
                      alpha: float) -> float:
    """The formula in NumPy, for checking: alpha x cross-entropy + (1 - alpha) x T^2 x mean KL.

    Example:
    >>> round(distillation_loss([[1.0, 0.0]], [[1.0, 0.0]], [[1.0, 0.0]], 2.0, 0.0), 6)
    0.0
    """
    import numpy as np

    def softmax(z: Any) -> Any:
        z = np.asarray(z, np.float64)
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    p_t = softmax(np.asarray(teacher_logits) / temperature)
    p_s = softmax(np.asarray(student_logits) / temperature)
    kl = (p_t * (np.log(p_t) - np.log(p_s))).sum(axis=-1).mean()
    ce = -(np.asarray(labels) * np.log(softmax(student_logits))).sum(axis=-1).mean()
    return float(alpha * ce + (1 - alpha) * temperature ** 2 * kl)
