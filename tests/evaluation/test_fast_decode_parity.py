"""The SavedModel's in-graph decoding reduces large JPEGs as training does (`data.fast_decode`),
so serving and training see the same pixels."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize("fast_decode", ["auto", "off"])
def test_serving_decodes_large_jpegs_as_training(run_copy, large_jpegs, fast_decode):
    import tensorflow as tf

    from tfft.config import load_config
    from tfft.data import decode, load_splits, make_dataset
    from tfft.evaluation.export import _serving_module
    from tfft.runs.directory import load_model, open_run

    cfg = load_config(run_copy / "config.yaml", overrides=[f"data.fast_decode={fast_decode}"])
    (run_copy / "config.yaml").write_text(cfg.to_yaml(), encoding="utf-8")
    run = open_run(run_copy)
    assert run.fast_decode is (fast_decode == "auto")
    files = large_jpegs
    paths = [files["plain.jpg"], files["progressive.jpg"], files["odd_size.jpg"]]  # TF's decoder route
    assert decode.dct_ratio(1200, 1600, run.image_size) == 8

    # The training pipeline's images of these files, in the split's order.
    data_cfg = run.config.data.model_copy(update={"source": str(files["plain.jpg"].parent.parent),
                                                    "val_split": 0.0})
    splits = load_splits(data_cfg, seed=0)
    order = [str(p) for p in splits.splits["train"].paths]
    trained = np.concatenate([x for x, _ in make_dataset(splits, "train", data_cfg, seed=0, training=False)
                              .as_numpy_iterator()])
    trained = np.stack([trained[order.index(str(p))] for p in paths])

    model = load_model(run)
    module = _serving_module(model, run.class_names, run.image_size, fast_decode=run.fast_decode)
    served = module.serve(tf.constant([p.read_bytes() for p in paths]))["probabilities"].numpy()
    expected = np.asarray(model.predict_on_batch(trained))
    np.testing.assert_allclose(served, expected, atol=1e-5)
    full = np.asarray(model.predict_on_batch(np.stack([
        decode.resize(tf.io.decode_jpeg(p.read_bytes(), channels=3), run.image_size).numpy() for p in paths])))
    if fast_decode == "off":
        np.testing.assert_allclose(served, full, atol=1e-5)
    else:  # the reduction ran in the graph: other pixels than a full decode's, with close outputs
        assert not np.allclose(served, full, atol=1e-7, rtol=0)
        assert np.abs(served - full).max() < 0.1
