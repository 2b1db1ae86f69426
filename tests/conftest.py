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


def user_files(folder: Path) -> list[str]:
    """The files under `folder`, relative, sorted (to check that a user's files survived)."""
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*") if p.is_file())


@pytest.fixture
def user_folder(tmp_path: Path) -> Path:
    """A folder of the user's own files (`notes.txt`, `photos/a.jpg`) that no `--out` may wipe."""
    folder = tmp_path / "mine"
    (folder / "photos").mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    (folder / "photos" / "a.jpg").write_bytes(b"not really a jpeg")
    return folder


def checkpoint_weights(run_dir: Path) -> dict[str, np.ndarray]:
    """The model variables of a run's resumable checkpoint, by variable path (in saved order)."""
    with np.load(run_dir / "checkpoints" / "last.npz", allow_pickle=False) as data:
        paths = [str(p) for p in data["model/paths"]]
        return {path: np.asarray(data[f"model/{i:05d}"]) for i, path in enumerate(paths)}


def interrupt_second_phase(monkeypatch, run: Path) -> None:
    """Make the next `tfft.train` into `run` stop like Ctrl-C at the start of its fine-tuning phase,
    once phase 1 is checkpointed (undo with `monkeypatch.undo()`)."""
    from tfft.schedule import freezing

    real = freezing.apply_freezing

    def interrupting(model, spec, unfreeze, *args, **kwargs):
        if unfreeze != "none" and (run / "checkpoints" / "last.npz").exists():
            raise KeyboardInterrupt
        return real(model, spec, unfreeze, *args, **kwargs)

    monkeypatch.setattr(freezing, "apply_freezing", interrupting)


def train_whole_and_resumed(config: dict, root: Path, monkeypatch, cli_runner) -> tuple[dict, dict]:
    """Train `config` uninterrupted into root/whole, and interrupted then resumed (`tfft train
    --resume`) into root/resumed; their checkpoint variables, in saved order."""
    import tfft
    from tfft.errors import TrainingInterrupted

    whole, run = root / "whole", root / "resumed"
    tfft.train(config, run_dir=str(whole))
    interrupt_second_phase(monkeypatch, run)
    with pytest.raises(TrainingInterrupted):
        tfft.train(config, run_dir=str(run))
    monkeypatch.undo()
    result = cli_runner("train", run / "config.yaml", "--run-dir", run, "--resume")
    assert result.exit_code == 0, result.output
    return checkpoint_weights(whole), checkpoint_weights(run)


def tiny_config(**sections) -> dict:
    """A config dict that trains in seconds here: builtin data, tiny images, one short phase, the
    two-convolution `TINY_BACKBONE` (set `model.backbone` where the network itself is tested)."""
    config = {
        "name": "tiny",
        "seed": 1,
        "data": {"source": "builtin:shapes", "image_size": [32, 32], "batch_size": 16,
                 "builtin_per_class": 16},
        "model": {"backbone": TINY_BACKBONE, "weights": None},
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


def _save_tiny_backbone(path: Path) -> Path:
    import keras

    # Seeded initializers, not keras.utils.set_random_seed: the fixture must not leave a global
    # seed behind in the worker (TF's tensor-seeded shuffles fail under a global seed of 0).
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 255, name="scale")(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="stem_conv",
                            kernel_initializer=keras.initializers.GlorotUniform(seed=0))(x)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="top_conv",
                            kernel_initializer=keras.initializers.GlorotUniform(seed=1))(x)
    keras.Model(inputs, x, name="tiny").save(str(path))
    keras.backend.clear_session()
    return path


@pytest.fixture(scope="session")
def tiny_backbone() -> Path:
    """A two-conv `.keras` backbone: fixed weights (so trials can share its features), instant to build."""
    return TINY_BACKBONE_PATH


@pytest.fixture(scope="session", autouse=True)
def _tiny_backbone_file() -> None:
    """Write the file `TINY_BACKBONE` names once (atomically: both xdist workers may get here)."""
    if not TINY_BACKBONE_PATH.is_file():
        tmp = TINY_BACKBONE_PATH.with_name(f"tiny-{os.getpid()}.keras")
        _save_tiny_backbone(tmp)
        os.replace(tmp, TINY_BACKBONE_PATH)


def photo_like(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A detailed test picture: smooth shading, sharp-edged shapes and fine texture (a 1-2 pixel
    pattern that a bad downscale aliases), uint8 RGB."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([110 + 60 * np.sin(xx / 97 + c) * np.cos(yy / 71 - c) for c in (0.0, 1.3, 2.6)], -1)
    for _ in range(40):  # rectangles with hard edges
        y0, x0 = rng.integers(0, height - 8), rng.integers(0, width - 8)
        h, w = rng.integers(8, height // 4), rng.integers(8, width // 4)
        image[y0:y0 + h, x0:x0 + w] = rng.uniform(0, 255, 3)
    image += 25 * np.sin(xx * 1.9 + yy * 0.7)[..., None]  # fine texture
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_large_jpegs(folder: Path) -> dict[str, Path]:
    """Large JPEGs of every kind the decoders route differently: baseline, progressive, CMYK,
    EXIF-rotated (stored portrait), and sizes that 8 does not divide."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    picture = photo_like(1200, 1600)
    files = {}

    def save(name, image, **kw):
        files[name] = folder / name
        image.save(files[name], quality=90, **kw)

    save("plain.jpg", Image.fromarray(picture))
    save("progressive.jpg", Image.fromarray(picture), progressive=True)
    save("cmyk.jpg", Image.fromarray(picture).convert("CMYK"))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 1200 wide, 1600 high; shown rotated 90 degrees clockwise
    save("rotated.jpg", Image.fromarray(np.ascontiguousarray(np.rot90(picture))), exif=exif.tobytes())
    save("odd_size.jpg", Image.fromarray(picture[:1196, :1596]))  # 4 divides it, 8 does not
    return files


@pytest.fixture(scope="session")
def large_jpegs(tmp_path_factory) -> dict[str, Path]:
    """`write_large_jpegs` once per session, in a folder `photos/cat/` (a one-class image folder)."""
    return write_large_jpegs(tmp_path_factory.mktemp("large") / "photos" / "cat")


# Persistent frozen features (performance.feature_store: auto) go to a folder of this session,
# never into the user's ~/.cache.
if "TFFT_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["TFFT_CACHE_DIR"] = tempfile.mkdtemp(prefix="tfft-test-cache-")

# The tiny two-conv backbone, `tiny_config`'s `model.backbone`: what most tests test is the run,
# not the network, and its train steps trace in a fraction of MobileNet's time. Tests of a
# network's own behaviour (BatchNorm, a partial-backbone cut, real transfer) name theirs.
# Blocks: its two convolutions, so `unfreeze: top:1` works.
TINY_BACKBONE_PATH = Path(os.environ["TFFT_CACHE_DIR"]) / "tiny-backbone.keras"
TINY_BACKBONE = f"keras:{TINY_BACKBONE_PATH}"


def pytest_collection_modifyitems(config, items):
    """Files with the most slow tests first, each file's tests in their own order.

    `make test` hands whole files to two pytest-xdist workers (`--dist loadfile`) in collection
    order (`--no-loadscope-reorder`: xdist would otherwise sort them by their number of tests,
    which put the notebooks, two long tests a file, last); a heavy file handed out last keeps one
    worker busy while the other idles.
    """
    slow: dict[Path, int] = {}
    for item in items:
        slow[item.path] = slow.get(item.path, 0) + (item.get_closest_marker("slow") is not None)
    order = {path: i for i, path in enumerate(dict.fromkeys(item.path for item in items))}
    items.sort(key=lambda item: (-slow[item.path], order[item.path]))
