"""Label-error recall, planted near-duplicates and the fold ensemble, on pets-mini with Lite0.

Builds a copy of the data (symlinks; nothing is written into the original):

- `train/` = pets-mini's train photos with `--flips` of them moved to the other class folder
  (deliberately wrong labels), plus `--copies` resized (x0.6 .. x1.5), re-encoded (JPEG quality
  70..90) copies of other photos: half in train/ (same class), half in test/;
- `test/` = pets-mini's val photos, held back: cross-validation never sees them (no val/ folder,
  so the folds pool train/ only).

Then runs `tfft.data.issues` (a 5-fold head-only cross-validation of the pretrained backbone,
features from the persistent store) and `tfft.ensemble` of the 5 fold runs on test/, and prints:

- how many of the flipped labels land in the top `--top` of label_issues.csv (and how many
  confident learning flags);
- how many planted copies duplicates.csv finds, by kind, and how many other pairs it lists;
- each fold's accuracy against the fold ensemble's, on the held-back test/ photos.

Usage:
    python benchmarks/bench_studies.py [--data ../shared/datasets/pets-mini] [--folds 5]
        [--flips 20] [--copies 10] [--top 40] [--epochs 5] [--backbone efficientnet_lite0]
        [--work /tmp/bench_studies]
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def build_copy(data: Path, work: Path, flips: int, copies: int, seed: int) -> tuple[Path, set[str], list[tuple[str, str]]]:
    """The benchmark's data folder; the flipped paths and the (original, copy) pairs."""
    from PIL import Image

    root = work / "data"
    if root.exists():
        shutil.rmtree(root)
    rng = np.random.default_rng(seed)
    classes = sorted(p.name for p in (data / "train").iterdir() if p.is_dir())
    train = [(c, p) for c in classes for p in sorted((data / "train" / c).glob("*.jpg"))]
    picks = rng.permutation(len(train))
    flipped_idx, copy_idx = set(picks[:flips].tolist()), picks[flips:flips + copies].tolist()
    flipped, pairs = set(), []
    for split, files in (("train", train), ("test", [(c, p) for c in classes
                                                      for p in sorted((data / "val" / c).glob("*.jpg"))])):
        for i, (cls, src) in enumerate(files):
            target_cls = cls
            if split == "train" and i in flipped_idx:
                target_cls = classes[(classes.index(cls) + 1) % len(classes)]
            dst = root / split / target_cls / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(src, dst)
            if target_cls != cls:
                flipped.add(os.path.abspath(dst))
    for n, i in enumerate(copy_idx):
        cls, src = train[i]
        split = "train" if n % 2 == 0 else "test"
        image = Image.open(src).convert("RGB")
        scale = (0.6, 0.8, 1.25, 1.5)[n % 4]
        image = image.resize((max(8, int(image.width * scale)), max(8, int(image.height * scale))),
                             Image.Resampling.BICUBIC)
        dst = root / split / cls / f"copy_{n:02d}_{src.stem}.jpg"
        image.save(dst, quality=int(70 + 20 * n / max(1, copies - 1)))
        pairs.append((os.path.abspath(root / "train" / (classes[(classes.index(cls) + 1) % len(classes)]
                                                        if i in flipped_idx else cls) / src.name),
                      os.path.abspath(dst)))
    return root, flipped, pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "datasets" / "pets-mini"))
    parser.add_argument("--work", default="/tmp/bench_studies")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--flips", type=int, default=20)
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import tfft
    from tfft.studies.issues import issues

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    root, flipped, planted = build_copy(Path(args.data), work, args.flips, args.copies, args.seed)
    cfg = tfft.load_config({
        "name": "bench-studies", "seed": args.seed,
        "data": {"source": str(root), "image_size": [args.image_size, args.image_size], "batch_size": 32},
        "model": {"backbone": args.backbone, "weights": "imagenet", "dropout": 0.2},
        "schedule": {"preset": "feature_extraction", "epochs": args.epochs, "lr": 1e-3},
        "augment": {"horizontal_flip": False},
        "training": {"runs_dir": str(work / "runs")},
    })
    out = work / "issues"
    if out.exists():
        shutil.rmtree(out)
    started = time.time()
    result = issues(cfg, folds=args.folds, top=args.top, out=out, quick=True)
    issues_s = time.time() - started

    top = [result.paths[r.index] for r in result.ranking[:args.top]]
    flagged = [result.paths[r.index] for r in result.ranking if r.is_issue]
    hits = len(flipped & set(top))
    flagged_hits = len(flipped & set(flagged))
    pairs = {frozenset((p.path_a, p.path_b)): p for p in result.duplicates}
    kinds: dict[str, int] = {}
    for a, b in planted:
        pair = pairs.get(frozenset((a, b)))
        if pair is not None:
            kinds[pair.kind] = kinds.get(pair.kind, 0) + 1
    found = sum(kinds.values())
    others = len(pairs) - found

    started = time.time()
    fold_dirs = [result.cv_dir / f"fold-{k}" for k in range(1, args.folds + 1)]
    ens = tfft.ensemble(fold_dirs, out=str(work / "ensemble"), split="test", overwrite=True)
    ensemble_s = time.time() - started
    member_acc = [m["accuracy"] for m in ens.members]

    print(f"\n{args.backbone} {args.image_size}px, {args.folds}-fold head-only cv ({args.epochs} epochs), "
          f"{len(result.paths)} train images, {ens.num_examples} held-back test images")
    print("| measure | value |")
    print("| --- | ---: |")
    print(f"| flipped labels in the top {args.top} | {hits} / {len(flipped)} |")
    print(f"| flipped labels flagged by confident learning | {flagged_hits} / {len(flipped)} "
          f"(of {len(flagged)} flagged) |")
    print(f"| planted copies found | {found} / {len(planted)} ("
          + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) + ") |")
    print(f"| other duplicate pairs listed | {others} |")
    print(f"| best single fold, test accuracy | {max(member_acc):.4f} (folds: "
          + ", ".join(f"{a:.4f}" for a in member_acc) + ") |")
    print(f"| mean fold, test accuracy | {np.mean(member_acc):.4f} |")
    print(f"| fold ensemble, test accuracy | {ens.metrics.get('accuracy', float('nan')):.4f} |")
    print(f"| time: data issues (cv + duplicates + gallery) | {issues_s:.0f} s |")
    print(f"| time: ensemble build + test evaluation | {ensemble_s:.0f} s |")


if __name__ == "__main__":
    main()
