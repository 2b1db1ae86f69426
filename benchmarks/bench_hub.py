"""KerasHub backbones and LoRA on this machine: step time, memory, trainable parameters, accuracy.

Three tables (each measurement in its own subprocess, so peak memory is that model's):

1. `speed`: a training step (batch 8, whole network trainable) of a tiny ViT, a small ViT (ViT-S/16
   dimensions) and EfficientNet-Lite0 at the same input size: step time per image and the peak
   resident memory the steps added, per image.
2. `lora`: full fine-tuning against LoRA (rank 4) of one locally built ViT on pets-mini:
   trainable parameters, step time, optimizer state, validation accuracy. The ViT's weights are
   built here with random initialisation (no internet: NOT ImageNet-pretrained), so the accuracy
   only compares the two on equal terms; it says nothing of pretrained transfer.
3. `cache`: a frozen ViT (feature extraction) with the feature cache on and off: wall time.

    PYTHONPATH=. python benchmarks/bench_hub.py [speed|lora|cache ...] [--size 128] [--steps 6]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PETS = Path(os.environ.get("TFFT_PETS", "/work/shared/datasets/pets-mini"))
VITS = {  # name: (patch, layers, heads, dim, mlp)
    "vit_tiny": (16, 4, 3, 192, 768),
    "vit_small": (16, 12, 6, 384, 1536),
}


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def save_vit(folder: Path, name: str, size: int, seed: int = 0) -> Path:
    """A randomly initialised ViT preset (with an x / 127.5 - 1 image converter)."""
    import keras
    import keras_hub

    patch, layers, heads, dim, mlp = VITS[name]
    keras.utils.set_random_seed(seed)
    path = folder / f"{name}_{size}"
    if not (path / "config.json").is_file():
        keras_hub.models.ViTBackbone(image_shape=(size, size, 3), patch_size=patch, num_layers=layers,
                                     num_heads=heads, hidden_dim=dim, mlp_dim=mlp).save_to_preset(str(path))
        keras_hub.layers.ViTImageConverter(image_size=(size, size), scale=1 / 127.5,
                                           offset=-1.0).save_to_preset(str(path))
    return path


def speed_one(backbone: str, size: int, steps: int, batch: int = 8) -> dict:
    """One model's training step time and peak memory added by the steps (run in a subprocess)."""
    import keras
    import numpy as np

    from tfft.config import ModelConfig
    from tfft.models.build import build_classifier

    weights = None if not backbone.startswith("hub:") else "imagenet"
    model = build_classifier(ModelConfig(backbone=backbone, weights=weights), 2, (size, size))
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy")
    images = np.random.default_rng(0).uniform(0, 255, (batch, size, size, 3)).astype("float32")
    labels = np.arange(batch) % 2
    model.train_on_batch(images, labels)  # trace
    before = _rss_mib()
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(images, labels)
    seconds = (time.perf_counter() - start) / steps
    return {"backbone": backbone, "params": model.count_params(), "ms_per_image": 1000 * seconds / batch,
            "peak_mib_per_image": max(_rss_mib() - before, 0.0) / batch, "rss_mib": _rss_mib()}


def train_one(preset: Path, size: int, epochs: int, lora: bool, cache: str = "auto",
              preset_name: str = "feature_extraction") -> dict:
    """One tfft run on pets-mini (in a subprocess): phases, step time, optimizer bytes, accuracy."""
    import tfft

    schedule = {"preset": preset_name, "lr": 1e-3, "epochs": epochs}
    if preset_name == "full" and lora:
        schedule["lora"] = {"rank": 4, "alpha": 8}
    config = {"name": "bench", "seed": 0, "data": {"source": str(PETS), "image_size": [size, size],
                                                  "batch_size": 16},
              "model": {"backbone": f"hub:{preset}", "weights": "imagenet"}, "schedule": schedule,
              "augment": {"horizontal_flip": False},
              "performance": {"cache_features": cache, "feature_store": "off"},
              "training": {"verbose": "quiet"}}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = tfft.train(config, run_dir=str(Path(tmp) / "run"))
        wall = time.perf_counter() - start
        phases = json.loads((Path(tmp) / "run" / "phases.json").read_text())
        history = (Path(tmp) / "run" / "history.csv").read_text().splitlines()
    return {"lora": lora, "cache": cache, "trainable": phases[-1]["trainable_params"],
            "frozen": phases[-1]["non_trainable_params"], "wall_s": wall, "epochs": len(history) - 1,
            "val_accuracy": result.metrics.get("val", {}).get("accuracy")}


def optimizer_state(preset: Path, size: int, lora: bool) -> dict:
    """Trainable parameters, optimizer state bytes and step time of one Adam step, full vs LoRA."""
    import keras
    import numpy as np

    from tfft.config import ModelConfig, ScheduleConfig
    from tfft.models.build import build_classifier, resolve_backbone
    from tfft.schedule import lora as lora_module
    from tfft.schedule.freezing import apply_freezing
    from tfft.schedule.phases import resolve_phases

    cfg = ModelConfig(backbone=f"hub:{preset}")
    spec = resolve_backbone(cfg)
    model = build_classifier(cfg, 2, (size, size), spec=spec)
    schedule = ScheduleConfig(preset="full", lora={"rank": 4, "alpha": 8} if lora else None)
    phase = resolve_phases(schedule, len(spec.blocks))[0]
    in_run = lora_module.prepare_run(model, [phase])
    report, _ = lora_module.apply(model, phase, apply_freezing(model, spec, "all", "frozen"), in_run)
    optimizer = keras.optimizers.Adam(1e-4)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    images = np.random.default_rng(0).uniform(0, 255, (8, size, size, 3)).astype("float32")
    labels = np.arange(8) % 2
    model.train_on_batch(images, labels)
    start = time.perf_counter()
    for _ in range(4):
        model.train_on_batch(images, labels)
    seconds = (time.perf_counter() - start) / 4
    state = sum(int(np.prod(v.shape)) * 4 for v in optimizer.variables if len(v.shape))
    return {"lora": lora, "trainable": report.trainable_params, "optimizer_mib": state / 2**20,
            "ms_per_image": 1000 * seconds / 8}


def _child(args: argparse.Namespace) -> None:
    payload = json.loads(args.child)
    kind = payload.pop("kind")
    if "preset" in payload:
        payload["preset"] = Path(payload["preset"])
    result = {"speed": speed_one, "train": train_one, "opt": optimizer_state}[kind](**payload)
    print("RESULT " + json.dumps(result))


def _spawn(**payload) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(payload, default=str)],
                         capture_output=True, text=True, env=env)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(out.stderr[-3000:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tables", nargs="*", default=["speed", "lora", "cache"])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--presets", default=str(Path(tempfile.gettempdir()) / "tfft-bench-presets"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    folder = Path(args.presets)
    folder.mkdir(parents=True, exist_ok=True)
    presets = {name: save_vit(folder, name, args.size) for name in VITS}
    if "speed" in args.tables:
        print(f"\n## speed: training step, batch 8, {args.size}x{args.size}, whole network trainable")
        print("| backbone | params | ms / image | peak MiB / image |\n| --- | ---: | ---: | ---: |")
        for backbone in [f"hub:{presets['vit_tiny']}", f"hub:{presets['vit_small']}", "efficientnet_lite0"]:
            row = _spawn(kind="speed", backbone=backbone, size=args.size, steps=args.steps)
            label = Path(backbone[4:]).name if backbone.startswith("hub:") else backbone
            print(f"| {label} | {row['params']:,} | {row['ms_per_image']:.1f} | {row['peak_mib_per_image']:.1f} |",
                  flush=True)
    if "lora" in args.tables:
        print(f"\n## lora: ViT-tiny (random init, NOT pretrained) on pets-mini, {args.size} px, Adam")
        print("| mode | trainable params | optimizer state MiB | ms / image (step) | val accuracy |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for lora in (False, True):
            opt = _spawn(kind="opt", preset=str(presets["vit_tiny"]), size=args.size, lora=lora)
            run = _spawn(kind="train", preset=str(presets["vit_tiny"]), size=args.size, epochs=args.epochs,
                         lora=lora, preset_name="full")
            print(f"| {'LoRA r4' if lora else 'full'} | {opt['trainable']:,} | {opt['optimizer_mib']:.2f} | "
                  f"{opt['ms_per_image']:.1f} | {run['val_accuracy']:.3f} ({run['epochs']} epochs) |", flush=True)
    if "cache" in args.tables:
        print(f"\n## cache: frozen ViT-small (feature extraction) on pets-mini, {args.size} px, "
              f"{args.epochs} epochs")
        print("| feature cache | wall s | val accuracy |\n| --- | ---: | ---: |")
        for cache in ("on", "off"):
            run = _spawn(kind="train", preset=str(presets["vit_small"]), size=args.size, epochs=args.epochs,
                         lora=False, cache=cache)
            print(f"| {cache} | {run['wall_s']:.0f} | {run['val_accuracy']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
