"""One training run's set-up, shared by its plan, its phase loop and its finish.

`start_session` makes the run directory and writes config.yaml and environment.json;
`Session.assemble` reads the data and builds the model (`tfft.training.assembly`), writes
labels.txt and data_report.json and prints what the run trains on. After that a `Session` is
read, not changed: what the run's progress changes is `tfft.training.plan.Progress`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional, Sequence

from tfft import layout
from tfft.atomic import write_json, write_json_entry, write_text
from tfft.training.assembly import ResolvedRun
from tfft.wording import plural


@dataclasses.dataclass
class Session:
    """A run set up: where it writes, in which precision, and (after `assemble`) its `Assembly`.

    Args:
        resolved: the run resolved once (`tfft.training.assembly.resolve`).
        strategy: the `tf.distribute` strategy.
        path: where this process writes (a non-chief worker: a temporary folder).
        source: the run directory a resumed run's checkpoint is read from (all workers share it).
        resume: whether the run continues from its checkpoint.
        chief: whether this process writes the run directory.
        precision: the precision policy asked for (`distribute.resolve_precision`).
        accelerator: whether a GPU or TPU is present.
    """

    resolved: ResolvedRun
    strategy: Any
    path: Path
    source: Path
    resume: bool
    chief: bool
    precision: str
    accelerator: bool
    asm: Optional[Any] = None  # tfft.training.assembly.Assembly, from `assemble`
    lora: Any = None  # the run's LoRA adapters (`tfft.schedule.lora.prepare_run`), from `plan_run`

    @property
    def cfg(self) -> Any:
        return self.resolved.config

    @property
    def model(self) -> Any:
        return self.asm.model

    @property
    def splits(self) -> Any:
        return self.asm.splits

    @property
    def class_names(self) -> list[str]:
        return self.asm.class_names

    @property
    def has_val(self) -> bool:
        return self.asm.has_val

    @property
    def num_train(self) -> int:
        return self.asm.num_train

    def assemble(self) -> None:
        """Read the data and build the model; write labels.txt and data_report.json."""
        from tfft import data
        from tfft.training import distribute
        from tfft.training.assembly import assemble

        self.asm = asm = assemble(self.resolved, self.strategy, self.accelerator)
        applied = distribute.applied_precision(self.model)  # what the layers compute in, not what was asked
        if applied != self.precision:
            print(f"precision: {self.precision} requested, the backbone's layers compute in {applied}")
        write_json_entry(self.path / layout.ENVIRONMENT, "precision", applied)
        write_text(self.path / layout.LABELS, "\n".join(self.class_names) + "\n")
        write_json(self.path / layout.DATA_REPORT, data.data_report(self.splits))
        counts = {name: len(split) for name, split in self.splits.splits.items()}
        print("data: " + ", ".join(f"{n} {k}" for k, n in counts.items()) +
              f" images, {len(self.class_names)} classes" +
              (f", {plural(len(self.splits.skipped), 'unreadable file')} skipped (see {layout.DATA_REPORT})"
               if self.splits.skipped else ""))
        if asm.augmenter is not None:
            print(f"augment ({asm.placement}): {asm.augmenter.describe()}")
        if asm.teacher is not None:
            settings = self.cfg.distill
            print(f"distill: {asm.teacher.describe()}, temperature {settings.temperature:g}, alpha {settings.alpha:g}")

    def recompute_batchnorm(self, names: Sequence[str]) -> None:
        """Set the moving statistics of the BatchNorm layers `names` (trained in a phase) to their
        values over the training split (`tfft.training.batchnorm`): the momentum's slow average
        leaves a model trained from scratch for a few epochs a constant in inference mode."""
        from tfft.training import batchnorm

        if not names:
            return
        count = batchnorm.recompute(self.model, names, self.asm.dataset("train", None))
        print(f"batchnorm: moving statistics of {plural(len(names), 'layer')} recomputed over {count} training images")


def start_session(resolved: ResolvedRun, strategy: Any, path: Path, resume: bool) -> Session:
    """Make the run directory (a non-chief worker: a temporary one) and write config.yaml (a new
    run) and environment.json.

    Example:
    >>> session = start_session(resolved, strategy, Path("runs/demo"), resume=False)  # doctest: +SKIP
    """
    from tfft.training import distribute

    cfg = resolved.config
    chief = distribute.is_chief(strategy)
    source = path  # where a resumed run's checkpoint is read (shared by all workers)
    if not chief:
        import tempfile

        path = Path(tempfile.mkdtemp(prefix="tfft-worker-"))
    path.mkdir(parents=True, exist_ok=True)
    precision = distribute.resolve_precision(cfg.performance, strategy)
    accelerator = distribute.has_accelerator()
    if not resume:
        write_text(path / layout.CONFIG, cfg.to_yaml())
    write_json(path / layout.ENVIRONMENT, distribute.environment(strategy, precision))
    return Session(resolved, strategy, path, source, resume, chief, precision, accelerator)
