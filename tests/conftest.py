"""Shared fixtures: tiny generated image folders, the pets-mini path, a CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
# /work/main/../shared, or from a worktree /work/wt/NAME/../../shared
SHARED = next((p / "shared" for p in REPO.parents[:2] if (p / "shared").is_dir()),
              REPO.parent / "shared")
PETS_MINI = SHARED / "datasets" / "pets-mini"


@pytest.fixture(scope="session")
def pets_mini() -> Path:
    """The real cat/dog photos beside the repo (CI has them); skipped where absent."""
    if not (PETS_MINI / "train").is_dir():
        pytest.skip(f"{PETS_MINI} not found")
    return PETS_MINI


def write_image_folder(root: Path, classes: dict[str, int], size: int = 48, seed: int = 0,
                       fmt: str = "png") -> Path:
    """Write `count` images per class under root/CLASS/; each class a distinct colour."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for index, (name, count) in enumerate(classes.items()):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        base = np.array([(index * 97) % 256, (index * 53 + 80) % 256, (index * 31 + 160) % 256])
        for i in range(count):
            pixels = np.clip(base + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{name}_{i:03d}.{fmt}")
    return root


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """A folder of 3 classes x 12 small PNGs (train/val split by val_split)."""
    return write_image_folder(tmp_path / "images", {"red": 12, "green": 12, "blue": 12})


@pytest.fixture
def cli_runner():
    """Invoke the tfft CLI in-process; returns click's Result (exit_code, output)."""
    from click.testing import CliRunner

    from tfft.cli.main import cli

    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)

    return invoke


def checkpoint_weights(run_dir: Path) -> dict[str, np.ndarray]:
    """The model variables of a run's resumable checkpoint, by variable path (in saved order)."""
    with np.load(run_dir / "checkpoints" / "last.npz", allow_pickle=False) as data:
        paths = [str(p) for p in data["model/paths"]]
        return {path: np.asarray(data[f"model/{i:05d}"]) for i, path in enumerate(paths)}


def tiny_config(**sections) -> dict:
    """A config dict that trains in seconds here: builtin data, tiny images, one short phase."""
    config = {
        "name": "tiny",
        "seed": 1,
        "data": {"source": "builtin:shapes", "image_size": [32, 32], "batch_size": 16,
                 "builtin_per_class": 16},
        "model": {"backbone": "mobilenet", "weights": None},
        "schedule": {"preset": "full", "epochs": 1},
        "augment": {"horizontal_flip": False},
        "training": {"steps_per_epoch": 2},
    }
    for section, values in sections.items():
        if isinstance(values, dict):
            config.setdefault(section, {}).update(values)
        else:
            config[section] = values
    return config


# Persistent frozen features (performance.feature_store: auto) go to a folder of this session,
# never into the user's ~/.cache.
if "TFFT_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["TFFT_CACHE_DIR"] = tempfile.mkdtemp(prefix="tfft-test-cache-")
