"""Tiny KerasHub presets written with KerasHub's own classes and `save_to_preset` (no download)."""

from __future__ import annotations

from pathlib import Path

import pytest

keras_hub = pytest.importorskip("keras_hub")


def save_tiny_presets(root: Path) -> dict[str, Path]:
    """A 2-layer ViT (32 px, patch 8, dim 16) and a 2-stage ResNet, each with an image converter."""
    import keras

    keras.utils.set_random_seed(0)
    vit = keras_hub.models.ViTBackbone(image_shape=(32, 32, 3), patch_size=8, num_layers=2, num_heads=2,
                                       hidden_dim=16, mlp_dim=32)
    vit.save_to_preset(str(root / "tiny_vit"))
    keras_hub.layers.ViTImageConverter(image_size=(32, 32), scale=1 / 127.5, offset=-1.0).save_to_preset(
        str(root / "tiny_vit"))
    cnn = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 32],
        stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2], block_type="basic_block",
        use_pre_activation=False, image_shape=(None, None, 3))
    cnn.save_to_preset(str(root / "tiny_resnet"))
    keras_hub.layers.ResNetImageConverter(
        scale=[1 / (255 * s) for s in (0.229, 0.224, 0.225)],
        offset=[-m / s for m, s in zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))],
    ).save_to_preset(str(root / "tiny_resnet"))
    keras.backend.clear_session()
    return {"vit": root / "tiny_vit", "cnn": root / "tiny_resnet"}


@pytest.fixture(scope="session")
def tiny_presets(tmp_path_factory) -> dict[str, Path]:
    """`{"vit": folder, "cnn": folder}`: tiny presets saved once per session."""
    return save_tiny_presets(tmp_path_factory.mktemp("presets"))
