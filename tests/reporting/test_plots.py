"""The figures people read: curves.png, the galleries (worst.png, label_issues.png)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tfft.reporting.plots import best_epoch, curves_figure, plot_curves

ROWS = [{"epoch": "1", "phase": "head", "loss": "0.9", "val_loss": "0.8", "accuracy": "0.6", "lr": "0.003"},
        {"epoch": "2", "phase": "finetune", "loss": "0.6", "val_loss": "0.55", "accuracy": "0.7", "lr": "0.003"},
        {"epoch": "3", "phase": "finetune", "loss": "0.4", "val_loss": "0.5", "accuracy": "0.8", "lr": "0.001"},
        {"epoch": "4", "phase": "finetune", "loss": "0.3", "val_loss": "0.5", "accuracy": "0.85", "lr": "0.0003"}]


@pytest.fixture
def figures():
    """Figures built in a test, closed after it."""
    import matplotlib.pyplot as plt

    made: list = []
    yield made
    for fig in made:
        plt.close(fig)


def _marked_epochs(ax) -> set[float]:
    return {float(np.asarray(line.get_xdata())[0]) for line in ax.lines if line.get_gid() == "best_epoch"}


def test_best_epoch_is_the_one_save_best_keeps():
    # The first lowest val_loss (epoch 3; epoch 4 ties and is no improvement), as the trainer's callback.
    assert best_epoch(ROWS) == (3, "val_loss", 0.5)
    no_val = [dict(r, val_loss="nan") for r in ROWS]  # no validation split: the trainer monitors loss
    assert best_epoch(no_val) == (4, "loss", 0.3)


def test_curves_mark_the_best_epoch_with_integer_ticks_and_phase_names(figures, tmp_path):
    fig = curves_figure(ROWS, saved="best")
    figures.append(fig)
    loss_ax, acc_ax, lr_ax = fig.axes
    for ax in (loss_ax, acc_ax, lr_ax):
        assert _marked_epochs(ax) == {3.0}
    assert "best val_loss 0.5, epoch 3 = model.keras" in loss_ax.get_legend_handles_labels()[1]
    assert list(lr_ax.get_xticks()) == [1, 2, 3, 4]
    # Each phase named inside the plotted x range, centred over its epochs.
    names = {t.get_text(): t.xy[0] for t in loss_ax.texts}
    assert names == {"head": 1.0, "finetune": 3.0}
    low, high = loss_ax.get_xlim()
    assert low < 1 and high > 4

    # Given by the trainer (model.keras kept the last epoch): the legend says which it holds.
    fig = curves_figure(ROWS, best=3, saved="last")
    figures.append(fig)
    assert "best val_loss 0.5, epoch 3 (model.keras: epoch 4, the last)" in fig.axes[0].get_legend_handles_labels()[1]

    # One epoch: a single integer tick, not 0.1 steps.
    fig = curves_figure(ROWS[:1])
    figures.append(fig)
    assert list(fig.axes[-1].get_xticks()) == [1]

    path = plot_curves(ROWS, tmp_path / "curves.png", saved="best")
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size[0] > 600 and png.size[1] > 700  # three panels


def test_distillation_losses_get_their_own_panels(figures):
    rows = [dict(r, task_loss=float(r["loss"]) * 0.8, distillation_loss=float(r["loss"]) * 3,
                 val_task_loss=float(r["val_loss"]) * 0.8, val_distillation_loss=float(r["val_loss"]) * 3)
            for r in ROWS]
    fig = curves_figure(rows)
    figures.append(fig)
    labels = [ax.get_legend_handles_labels()[1] for ax in fig.axes]
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "task loss", "distillation loss", "accuracy",
                                                    "learning rate"]
    assert labels[1] == ["task_loss", "val_task_loss"]
    assert labels[2] == ["distillation_loss", "val_distillation_loss"]
    plotted = fig.axes[2].lines[0].get_ydata()
    assert np.allclose(plotted, [2.7, 1.8, 1.2, 0.9])


def test_gallery_tiles_are_decoded_as_training_decodes_them_and_named(figures, tmp_path):
    from tfft.data.files import read_image
    from tfft.reporting.plots import gallery_figure, plot_gallery

    deep = np.zeros((40, 60), np.uint16)
    deep[:, :30], deep[:, 30:] = 20000, 60000
    Image.fromarray(deep).save(tmp_path / "deep16.png")  # mode I;16: PIL's convert("RGB") gives white
    wide = np.zeros((40, 80, 3), np.uint8)
    wide[:, :40], wide[:, 40:] = (255, 0, 0), (0, 0, 255)  # red left, blue right as stored
    photo = Image.fromarray(wide)
    exif = photo.getexif()
    exif[0x0112] = 6  # EXIF orientation: rotate 90 degrees clockwise to display
    photo.save(tmp_path / "rotated.jpg", exif=exif.tobytes())
    paths = [str(tmp_path / "deep16.png"), str(tmp_path / "rotated.jpg"), str(tmp_path / "missing.jpg")]

    fig = gallery_figure(paths, [0, 1, 0], [1, 1, 1], [[0.2, 0.8], [0.1, 0.9], [0.4, 0.6]], ["cat", "dog"],
                         image_size=(32, 32))
    figures.append(fig)
    tiles = [ax for ax in fig.axes if ax.images]
    deep_tile, rotated_tile = (np.asarray(ax.images[0].get_array()) for ax in tiles[:2])
    for tile, path in zip((deep_tile, rotated_tile), paths):
        assert np.allclose(tile, read_image(path, (32, 32)) / 255.0)  # the training decoder's pixels
    assert deep_tile[:, :12].mean() == pytest.approx(78 / 255, abs=0.02)  # 20000 >> 8, not white
    assert deep_tile[:, 20:].mean() == pytest.approx(234 / 255, abs=0.02)
    assert rotated_tile[2, 16, 0] > 0.8 and rotated_tile[2, 16, 2] < 0.2  # turned upright: red on top
    assert rotated_tile[29, 16, 2] > 0.8 and rotated_tile[29, 16, 0] < 0.2
    assert [ax.get_title() for ax in tiles] == ["deep16.png\ncat -> dog (0.80)", "rotated.jpg\ndog -> dog (0.90)",
                                                "missing.jpg\ncat -> dog (0.60)"]

    path = plot_gallery(paths[:2], [0, 1], [1, 1], [[0.2, 0.8], [0.1, 0.9]], ["cat", "dog"],
                        tmp_path / "label_issues.png", image_size=(32, 32), title="suspects")
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size[0] > 250
