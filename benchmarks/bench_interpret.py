"""Do tfft's Grad-CAM heatmaps point at what decides the class? The pointing game on a patch dataset.

Images: a random texture background, and at a random place a small patch whose kind decides the
class; the patch's box is known per image. Designs (`--design`):

- `stripes+plain` (default): white stripes, horizontal or vertical, and a `plain` class with no
  patch, so that each stripe class must be told from "no patch" by evidence inside its patch;
- `kinds`: four patch kinds (red horizontal stripes, green vertical stripes, blue checkerboard,
  yellow diagonal stripes) and `plain`;
- `stripes`: the first design, two classes only; a model may learn one detector and decide the
  other class by its absence (a documented negative result in RESULTS.md).

A small CNN (a `keras:` backbone file) is trained with `tfft.train`; we measure (settings are chosen
on the val split, figures reported on a held-out set generated with another seed):

- mass: the share of the heatmap's total inside the patch (the patch covers `area` of the image),
  and inside the patch grown by 4 px (one cell of the backbone's 16x16 feature map),
- pointing: the share of images whose heatmap peak falls inside the patch,

for the trained model, the same model with its head re-initialised (Adebayo et al.'s cascading
randomisation, first step) and with every weight re-initialised; and the time of `heatmaps` on
100 images and of the whole `tfft.interpret` (100 val images, top 16, galleries).

Run (a few minutes on 2 CPU cores):
    PYTHONPATH=. python benchmarks/bench_interpret.py [--out /tmp/bench-interpret]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

TEXTURE = "blocks"  # --texture smooth: the blocks blurred
# class -> (patch colour, pattern); a None colour: no patch. The pattern is 1 on the coloured pixels,
# 0 on the dark (30) ones.
DESIGNS = {
    "kinds": {"red_h": ((255, 30, 30), "horizontal"), "green_v": ((30, 230, 30), "vertical"),
              "blue_check": ((40, 80, 255), "checker"), "yellow_diag": ((240, 230, 30), "diagonal"),
              "plain": (None, None)},
    "stripes": {"horizontal": ((230, 230, 230), "horizontal"), "vertical": ((230, 230, 230), "vertical")},
    "stripes+plain": {"horizontal": ((230, 230, 230), "horizontal"), "vertical": ((230, 230, 230), "vertical"),
                      "plain": (None, None)},
}
PATCHES = DESIGNS["stripes+plain"]
CLASSES = tuple(PATCHES)
SIZE, PATCH = 64, 14  # --size / --patch change them (the patch keeps its share of the image: 4.8%)


def patch_pattern(kind: str) -> np.ndarray:
    """[PATCH, PATCH] 0/1: stripes PATCH/7 px wide (horizontal, vertical, diagonal) or a checkerboard."""
    band = np.arange(PATCH) // max(1, PATCH // 7)
    rows, cols = np.meshgrid(band, band, indexing="ij")
    index = {"horizontal": rows, "vertical": cols, "checker": rows + cols,
             "diagonal": (np.add.outer(np.arange(PATCH), np.arange(PATCH)) // max(1, PATCH // 7))}[kind]
    return (index % 2).astype(np.float64)


def make_patch_dataset(root: Path, per_class: dict, seed: int = 0) -> dict:
    """Write root/<split>/<class>/*.png; return {path: (y0, x0, y1, x1)} of each image's patch."""
    from PIL import Image
    from scipy.ndimage import zoom

    rng = np.random.default_rng(seed)
    boxes = {}
    for split, count in per_class.items():
        for name in CLASSES:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                coarse = rng.uniform(60, 200, (8, 8, 3))  # 8x8 blocks of SIZE/8 px, stripes PATCH/7 px wide
                if TEXTURE == "blocks":  # sharp block edges: horizontal and vertical, like the stripes
                    image = np.kron(coarse, np.ones((SIZE // 8, SIZE // 8, 1)))
                else:  # the same blocks blurred: no straight edges
                    image = zoom(coarse, (SIZE / 8, SIZE / 8, 1), order=3, mode="nearest")
                image = image + rng.normal(0, 25, (SIZE, SIZE, 3))
                colour, kind = PATCHES[name]
                if colour is None:  # no patch: the `plain` class
                    path = folder / f"{name}_{i:03d}.png"
                    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(path)
                    continue
                pattern = patch_pattern(kind)
                y0, x0 = rng.integers(0, SIZE - PATCH, 2)
                image[y0:y0 + PATCH, x0:x0 + PATCH] = 30 + pattern[..., None] * (np.asarray(colour) - 30.0)
                path = folder / f"{name}_{i:03d}.png"
                Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(path)
                boxes[str(path)] = (int(y0), int(x0), int(y0 + PATCH), int(x0 + PATCH))
    return boxes


def backbone_file(path: Path, strides: tuple = (2, 2, 1), linear_top: bool = False) -> Path:
    """Three 3x3 convolutions; `linear_top`: the last one without its ReLU, so that a patch can lower
    a feature below zero (with a ReLU, "less of feature k here" is evidence Grad-CAM cannot show)."""
    import keras

    inputs = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    for i, filters in enumerate((16, 32, 64)):
        x = keras.layers.Conv2D(filters, 3, strides=strides[i], padding="same", name=f"conv{i + 1}",
                                activation=None if linear_top and i == 2 else "relu")(x)
    keras.Model(inputs, x, name="patchnet").save(path)
    return path


def scores(maps: np.ndarray, boxes: list, keep=None, margin: int = 4) -> dict:
    """Mean heatmap mass inside the patch (and inside it grown by `margin` px, one feature-map
    cell of the stride-4 backbone), and the pointing game (the peak inside the patch)."""
    mass, near, hits = [], [], []
    if keep is not None:
        maps, boxes = maps[keep], [b for b, k in zip(boxes, keep) if k]
    for heat, (y0, x0, y1, x1) in zip(maps, boxes):
        total = float(heat.sum())
        mass.append(float(heat[y0:y1, x0:x1].sum()) / total if total > 0 else 0.0)
        grown = heat[max(0, y0 - margin):y1 + margin, max(0, x0 - margin):x1 + margin]
        near.append(float(grown.sum()) / total if total > 0 else 0.0)
        peak = np.unravel_index(int(heat.argmax()), heat.shape)
        hits.append(total > 0 and y0 <= peak[0] < y1 and x0 <= peak[1] < x1)
    return {"mass_in_patch": round(float(np.mean(mass)), 3), "mass_within_4px": round(float(np.mean(near)), 3),
            "pointing_game": round(float(np.mean(hits)), 3)}


VARIANTS = [("gradcam", "aligned", None), ("gradcam", "bilinear", None), ("gradcam++", "aligned", None),
            ("gradcam", "aligned", "conv1"), ("gradcam++", "aligned", "conv1")]  # the first: tfft's default
SCORECAM = [("scorecam", "aligned", None), ("scorecam", "bilinear", None)]  # --scorecam (64 passes per image)


def randomised(model, what: str, seed: int = 1):
    """A copy of `model` with its head (`head`) or every weight (`all`) drawn again, same scale."""
    import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    rng = np.random.default_rng(seed)
    layers = [copy.get_layer("logits")] + (list(copy.get_layer("backbone").layers) if what == "all" else [])
    for layer in layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            k, b = layer.get_weights()
            layer.set_weights([rng.normal(0, k.std(), k.shape).astype(np.float32), np.zeros_like(b)])
    return copy


def main() -> None:
    global SIZE, PATCH, TEXTURE, CLASSES, PATCHES
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="/tmp/bench-interpret")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--size", type=int, default=SIZE, help="image side, px")
    parser.add_argument("--patch", type=int, default=PATCH, help="patch side, px")
    parser.add_argument("--texture", default=TEXTURE, choices=["blocks", "smooth"])
    parser.add_argument("--design", default="stripes+plain", choices=sorted(DESIGNS))
    parser.add_argument("--scorecam", action="store_true", help="also Score-CAM (10-30x slower)")
    parser.add_argument("--linear-top", action="store_true", help="the backbone's last convolution without ReLU")
    parser.add_argument("--strides", default="2,2,1", help="the three convolutions' strides (2,1,1: a finer last map)")
    args = parser.parse_args()
    SIZE, PATCH, TEXTURE = args.size, args.patch, args.texture
    PATCHES = DESIGNS[args.design]
    CLASSES = tuple(PATCHES)

    from tfft.data.files import read_image
    from tfft.evaluation.interpret import interpret
    from tfft.models.heatmaps import heatmaps
    from tfft.runs.directory import load_model, open_run
    from tfft.training.run import train

    out = Path(args.out)
    boxes = make_patch_dataset(out / "data", {"train": 150, "val": 50})  # per class
    held = make_patch_dataset(out / "heldout", {"test": 50}, seed=7)  # never seen by training nor the choice
    config = {
        "name": "patch", "seed": 0,
        "data": {"source": str(out / "data"), "image_size": [SIZE, SIZE], "batch_size": 32},
        "model": {"backbone": f"keras:{backbone_file(out / 'patchnet.keras', tuple(int(v) for v in args.strides.split(',')), args.linear_top)}", "weights": None, "dropout": 0.0},
        "schedule": {"phases": [{"name": "all", "epochs": args.epochs, "unfreeze": "all", "lr": 3e-3}]},
        "augment": {"horizontal_flip": False},
        "performance": {"cache_features": "off"},
        "training": {"save": "last", "verbose": "quiet"},
    }
    started = time.perf_counter()
    run_dir = train(config, run_dir=str(out / "run"), overwrite=True).run_dir
    train_s = time.perf_counter() - started
    run = open_run(run_dir)
    model = load_model(run)
    names = list(run.class_names)  # the model's order (sorted folder names), not CLASSES's
    patched = [c for c, name in enumerate(names) if PATCHES[name][0] is not None]

    def load(folder):  # every image (for the accuracy), and those with a patch (for the heatmaps)
        paths = sorted(str(p) for p in Path(folder).glob("*/*.png"))
        images = np.stack([read_image(p, run.image_size, fast_decode=run.fast_decode) for p in paths])
        labels = np.asarray([names.index(Path(p).parent.name) for p in paths])
        accuracy = float((model.predict_on_batch(images).argmax(axis=1) == labels).mean())
        keep = [i for i, p in enumerate(paths) if p in boxes or p in held]
        return (images[keep], labels[keep], [boxes.get(paths[i]) or held[paths[i]] for i in keep]), accuracy
    (val, val_acc), (test, test_acc) = load(out / "data" / "val"), load(out / "heldout" / "test")
    accuracy = {"val": val_acc, "heldout": test_acc}
    heatmaps(model, val[0][:4])  # trace once
    random_head, random_all = randomised(model, "head"), randomised(model, "all")
    rows = []
    for method, upsampling, layer in VARIANTS + (SCORECAM if args.scorecam else []):
        def maps(m, data):  # heatmaps of the true class
            return heatmaps(m, data[0], class_index=data[1], method=method, upsampling=upsampling, layer=layer)
        started = time.perf_counter()
        chosen_on = scores(maps(model, val), val[2])
        seconds = time.perf_counter() - started
        trained = maps(model, test)
        rows.append({"method": method, "upsampling": upsampling, "layer": layer or "last",
                     "val (choice)": chosen_on, "heldout": scores(trained, test[2]),
                     "heldout per class": {names[c]: scores(trained, test[2], test[1] == c)["mass_in_patch"]
                                           for c in patched},
                     "heldout, head randomised": scores(maps(random_head, test), test[2]),
                     "heldout, all randomised": scores(maps(random_all, test), test[2]),
                     "seconds_100": round(seconds * 100 / len(val[0]), 2)})
        print(json.dumps(rows[-1]), flush=True)
    started = time.perf_counter()
    interpret(run_dir, split="val", top=16)
    print(json.dumps({"classes": names, "val images with a patch": len(val[0]),
                      "heldout images with a patch": len(test[0]), "area": round(PATCH * PATCH / SIZE**2, 3),
                      "area_within_4px": round((PATCH + 8) ** 2 / SIZE**2, 3), "accuracy": accuracy,
                      "train_s": round(train_s, 1), "interpret_val_s": round(time.perf_counter() - started, 2)},
                     indent=2))


if __name__ == "__main__":
    main()
