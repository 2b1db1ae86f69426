"""Multi-label thresholds on new data: the plain F1-best cut against `robust_thresholds` (and 0.5).

Run from the repo root:

    .venv/bin/python benchmarks/bench_thresholds.py SIZE PHOTOS_PER_CLASS EPOCHS SEEDS
    .venv/bin/python benchmarks/bench_thresholds.py 96 80 8 0,1,2

For each seed: pets-mini mosaics (`tfft.data.mosaics.build_mosaics`, PHOTOS_PER_CLASS photos of each
class and split: 2 x that many train mosaics, val photos halved into val and test), one head-only
`tfft.train` of the offline ImageNet Lite0, then the thresholds chosen on the val mosaics three
ways and scored on the test mosaics, which chose nothing. Prints one JSON line per seed and the
means. The val F1 at the F1-best cut is in-sample.
"""
import json, os, sys, tempfile
from pathlib import Path
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import numpy as np

import tfft
from tfft import data
from tfft.data.mosaics import build_mosaics
from tfft.reporting.evaluate import collect
from tfft.task.multi_label import compute_multilabel_metrics
from tfft.task.thresholds import robust_thresholds, tune_thresholds
import keras

PETS = next((up / "shared/datasets/pets-mini" for up in Path(__file__).resolve().parents[1:4]
             if (up / "shared/datasets/pets-mini").is_dir()), Path("../shared/datasets/pets-mini"))
size, per_class, epochs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
seeds = [int(s) for s in sys.argv[4].split(",")]
rows = []
for seed in seeds:
    work = Path(tempfile.mkdtemp(prefix=f"h5-mosaic-{seed}-"))
    manifest = build_mosaics(PETS, work / "m", size=size, seed=seed, photos_per_class=per_class)
    cfg = {"name": f"m{seed}", "seed": seed, "task": "multi_label",
           "data": {"source": f"csv:{manifest}", "image_size": [size, 2 * size], "batch_size": 32},
           "model": {"backbone": "efficientnet_lite0", "weights": "imagenet", "dropout": 0.2},
           "schedule": {"preset": "feature_extraction", "epochs": epochs, "lr": 1e-3},
           "augment": {"horizontal_flip": False}, "evaluate": {"splits": ["val"]},
           "training": {"verbose": "quiet"}}
    result = tfft.train(cfg, run_dir=str(work / "run"))
    c = tfft.load_config(work / "run" / "config.yaml")
    splits = data.load_splits(c.data, c.seed, task="multi_label")
    model = keras.models.load_model(work / "run" / "model.keras", compile=False)
    yv, pv = collect(model, data.make_dataset(splits, "val", c.data, seed=c.seed, training=False))
    yt, pt = collect(model, data.make_dataset(splits, "test", c.data, seed=c.seed, training=False))
    names = list(splits.class_names)
    best = tune_thresholds(yv, pv)
    robust, details = robust_thresholds(yv, pv)
    both = (yt.sum(axis=1) == 2)
    row = {"seed": seed, "train": len(splits["train"]), "val": len(yv), "test": len(yt),
           "positives_val": details["positives"], "both_test": int(both.sum())}
    for name, cuts in (("f1best", best), ("robust", robust), ("half", np.full(len(names), 0.5))):
        mv = compute_multilabel_metrics(yv, pv, names, cuts)
        mt = compute_multilabel_metrics(yt, pt, names, cuts)
        pred_both = int(((pt >= cuts).sum(axis=1) == 2)[both].sum())
        row[name] = {"thresholds": [round(float(x), 3) for x in cuts], "val_micro_f1": round(mv["micro_f1"], 4),
                     "test_micro_f1": round(mt["micro_f1"], 4), "test_macro_f1": round(mt["macro_f1"], 4),
                     "test_both_labelled_both": pred_both}
    row["interval"] = details["interval"]
    rows.append(row)
    print(json.dumps(row), flush=True)
for name in ("f1best", "robust", "half"):
    print(name, "mean test micro F1", round(float(np.mean([r[name]["test_micro_f1"] for r in rows])), 4),
          "val micro F1", round(float(np.mean([r[name]["val_micro_f1"] for r in rows])), 4),
          "both->both", sum(r[name]["test_both_labelled_both"] for r in rows), "of", sum(r["both_test"] for r in rows))
