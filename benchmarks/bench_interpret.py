"""Do tfft's Grad-CAM heatmaps point at what decides the class? The pointing game on a patch dataset.

Images: a random texture background, and at a random place a small patch whose stripes
(horizontal or vertical, same colours) decide the class; the patch's box is known per image.
A small CNN (a `keras:` backbone file) is trained with `tfft.train`; on the val split we measure:

- mass: the share of the heatmap's total inside the patch (the patch covers `area` of the image),
  and inside the patch grown by 4 px (one cell of the backbone's 16x16 feature map),
- pointing: the share of images whose heatmap peak falls inside the patch,

for the trained model, the same model with its head re-initialised (Adebayo et al.'s cascading
randomisation, first step) and with every weight re-initialised; and the time of `heatmaps` on
100 images and of the whole `tfft.interpret` (100 val images, top 16, galleries).

Run (about 3 minutes on 2 CPU cores):
    PYTHONPATH=. python benchmarks/bench_interpret.py [--out /tmp/bench-interpret]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

SIZE, PATCH = 64, 14


def make_patch_dataset(root: Path, per_class: dict, seed: int = 0) -> dict:
    """Write root/<split>/<class>/*.png; return {path: (y0, x0, y1, x1)} of each image's patch."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    boxes = {}
    for split, count in per_class.items():
        for label, name in enumerate(("horizontal", "vertical")):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                coarse = rng.uniform(60, 200, (SIZE // 8, SIZE // 8, 3))
                image = np.kron(coarse, np.ones((8, 8, 1))) + rng.normal(0, 25, (SIZE, SIZE, 3))
                stripes = (np.arange(PATCH) // 2 % 2).astype(np.float64)
                pattern = np.tile(stripes[:, None], (1, PATCH)) if label == 0 else np.tile(stripes[None, :], (PATCH, 1))
                y0, x0 = rng.integers(0, SIZE - PATCH, 2)
                image[y0:y0 + PATCH, x0:x0 + PATCH] = 30 + 200 * pattern[..., None]
                path = folder / f"{name}_{i:03d}.png"
                Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(path)
                boxes[str(path)] = (int(y0), int(x0), int(y0 + PATCH), int(x0 + PATCH))
    return boxes


def backbone_file(path: Path) -> Path:
    import keras

    inputs = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    for i, filters in enumerate((16, 32, 64)):
        x = keras.layers.Conv2D(filters, 3, strides=2 if i < 2 else 1, padding="same", activation="relu",
                                name=f"conv{i + 1}")(x)
    keras.Model(inputs, x, name="patchnet").save(path)
    return path


def scores(maps: np.ndarray, boxes: list, margin: int = 4) -> dict:
    """Mean heatmap mass inside the patch (and inside it grown by `margin` px, one feature-map
    cell of the stride-4 backbone), and the pointing game (the peak inside the patch)."""
    mass, near, hits = [], [], []
    for heat, (y0, x0, y1, x1) in zip(maps, boxes):
        total = float(heat.sum())
        mass.append(float(heat[y0:y1, x0:x1].sum()) / total if total > 0 else 0.0)
        grown = heat[max(0, y0 - margin):y1 + margin, max(0, x0 - margin):x1 + margin]
        near.append(float(grown.sum()) / total if total > 0 else 0.0)
        peak = np.unravel_index(int(heat.argmax()), heat.shape)
        hits.append(total > 0 and y0 <= peak[0] < y1 and x0 <= peak[1] < x1)
    return {"mass_in_patch": round(float(np.mean(mass)), 3), "mass_within_4px": round(float(np.mean(near)), 3),
            "pointing_game": round(float(np.mean(hits)), 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="/tmp/bench-interpret")
    args = parser.parse_args()
    import keras

    from tfft.data.files import read_image
    from tfft.evaluation.interpret import interpret
    from tfft.models.heatmaps import heatmaps
    from tfft.runs.directory import load_model, open_run
    from tfft.training.run import train

    out = Path(args.out)
    boxes = make_patch_dataset(out / "data", {"train": 150, "val": 50})
    config = {
        "name": "patch", "seed": 0,
        "data": {"source": str(out / "data"), "image_size": [SIZE, SIZE], "batch_size": 32},
        "model": {"backbone": f"keras:{backbone_file(out / 'patchnet.keras')}", "weights": None, "dropout": 0.0},
        "schedule": {"phases": [{"name": "all", "epochs": 12, "unfreeze": "all", "lr": 3e-3}]},
        "augment": {"horizontal_flip": False},
        "performance": {"cache_features": "off"},
        "training": {"save": "last", "verbose": "quiet"},
    }
    started = time.perf_counter()
    run_dir = train(config, run_dir=str(out / "run"), overwrite=True).run_dir
    train_s = time.perf_counter() - started
    run = open_run(run_dir)
    model = load_model(run)
    val = sorted(p for p in boxes if "/val/" in p)
    images = np.stack([read_image(p, run.image_size, fast_decode=run.fast_decode) for p in val])
    labels = np.asarray([0 if "/horizontal/" in p else 1 for p in val])
    accuracy = float((model.predict_on_batch(images).argmax(axis=1) == labels).mean())
    heatmaps(model, images[:4])  # trace once
    started = time.perf_counter()
    trained = heatmaps(model, images, class_index=labels)
    heatmap_s = time.perf_counter() - started
    result = {"images": len(val), "area": round(PATCH * PATCH / SIZE**2, 3),
              "area_within_4px": round((PATCH + 8) ** 2 / SIZE**2, 3), "val_accuracy": round(accuracy, 3),
              "train_s": round(train_s, 1), "trained": scores(trained, [boxes[p] for p in val])}
    head = model.get_layer("logits")
    kernel, bias = head.get_weights()
    rng = np.random.default_rng(1)
    head.set_weights([rng.normal(0, kernel.std(), kernel.shape).astype(np.float32), np.zeros_like(bias)])
    result["random_head"] = scores(heatmaps(model, images, class_index=labels), [boxes[p] for p in val])
    for layer in model.get_layer("backbone").layers:
        if isinstance(layer, keras.layers.Conv2D):
            k, b = layer.get_weights()
            layer.set_weights([rng.normal(0, k.std(), k.shape).astype(np.float32), np.zeros_like(b)])
    result["random_all"] = scores(heatmaps(model, images, class_index=labels), [boxes[p] for p in val])
    started = time.perf_counter()
    interpret(run_dir, split="val", top=16)
    result["seconds"] = {"heatmaps_100": round(heatmap_s, 2), "interpret_100": round(time.perf_counter() - started, 2)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
