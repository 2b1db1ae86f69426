"""`tfft interpret` / `tfft.interpret` on the shared tiny pets-mini run, and the heatmap sanity check."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from tfft.evaluation.interpret import interpret


@pytest.fixture(scope="module")
def interpreted(run_dir, tmp_path_factory):
    return interpret(run_dir, split="val", top=4, out=str(tmp_path_factory.mktemp("interp") / "out"))


def test_top_losses_are_the_largest_losses_on_the_pixels_training_saw(interpreted, run_dir):
    from tfft.data.files import read_image
    from tfft.runs.directory import load_model, open_run

    result = interpreted
    assert result.heatmaps.shape == (4, 64, 64) and result.images.shape == (4, 64, 64, 3)
    assert 0.0 <= result.heatmaps.min() and result.heatmaps.max() <= 1.0
    assert list(result.losses) == sorted(result.losses, reverse=True)
    run = open_run(run_dir)
    model = load_model(run)
    decoded = np.stack([read_image(p, run.image_size, fast_decode=run.fast_decode) for p in result.paths])
    np.testing.assert_allclose(result.images, decoded)
    probs = model.predict_on_batch(decoded)
    labels = [run.class_names.index(n) for n in [run.class_names[i] for i in result.labels]]
    np.testing.assert_allclose(result.losses, -np.log(probs[np.arange(4), labels]), rtol=1e-4, atol=1e-5)
    # no other val image has a larger loss than the 4th shown
    doc = json.loads((result.out_dir / "interpret.json").read_text())
    assert [r["loss"] for r in doc["top_losses"]] == [round(float(v), 6) for v in result.losses]
    assert doc["images"] >= 4 and doc["method"] == "gradcam"
    with open(result.out_dir / "top_losses.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 4


def test_figures_written(interpreted):
    files = interpreted.files
    assert files["top_losses"].stat().st_size > 1000
    assert any(key.startswith("class_") for key in files)
    for path in files.values():
        assert path.is_file()
    if interpreted.most_confused:
        assert files["most_confused"].is_file()


def test_heatmaps_differ_from_randomised_head(run_dir, interpreted):
    """Adebayo et al.'s model randomisation test: the maps must depend on the learned weights."""
    import keras

    from tfft.models.heatmaps import heatmaps
    from tfft.runs.directory import load_model, open_run

    model = load_model(open_run(run_dir))
    images = interpreted.images
    trained = heatmaps(model, images, class_index=0)
    head = model.get_layer("logits")
    kernel, bias = head.get_weights()
    head.set_weights([np.random.default_rng(0).normal(0, kernel.std() + 1e-3, kernel.shape).astype(np.float32),
                      np.zeros_like(bias)])
    randomised = heatmaps(model, images, class_index=0)
    corr = [np.corrcoef(a.ravel(), b.ravel())[0, 1] if a.std() and b.std() else 0.0
            for a, b in zip(trained, randomised)]
    assert np.mean(np.abs(trained - randomised)) > 0.1
    assert np.mean(corr) < 0.5
    keras.backend.clear_session()


def test_cli_writes_the_folder_and_report(run_copy, cli_runner):
    result = cli_runner("interpret", run_copy, "--top", "3", "--method", "gradcam++")
    assert result.exit_code == 0, result.output
    assert (run_copy / "interpret" / "val" / "top_losses.png").is_file()
    assert json.loads((run_copy / "interpret" / "val" / "interpret.json").read_text())["method"] == "gradcam++"
    html = (run_copy / "report.html").read_text()
    assert "interpret/val/top_losses.png" in html and "data:image/png;base64," in html


def test_cli_refuses_bad_top_and_foreign_out(run_copy, cli_runner, tmp_path):
    result = cli_runner("interpret", run_copy, "--top", "0")
    assert result.exit_code == 2 and "--top" in result.output
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    result = cli_runner("interpret", run_copy, "--out", tmp_path / "mine")
    assert result.exit_code == 2 and "did not write" in result.output
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_ensemble_run_is_explained_by_its_members(run_dir, tmp_path, cli_runner):
    """Two identical members: the ensemble's averaged heatmaps are each member's."""
    import shutil

    from tfft.models.heatmaps import heatmaps
    from tfft.studies.ensemble import ensemble
    from tfft.runs.directory import load_model, open_run

    twin = shutil.copytree(run_dir, tmp_path / "twin")
    out = tmp_path / "ens"
    ensemble([str(run_dir), str(twin)], str(out))
    result = interpret(out, split="val", top=3)
    assert (out / "report.html").is_file()  # written by tfft ensemble
    assert result.heatmaps.shape == (3, 64, 64) and (out / "interpret" / "val" / "top_losses.png").is_file()
    member = heatmaps(load_model(open_run(run_dir)), result.images, class_index=result.predicted)
    np.testing.assert_allclose(result.heatmaps, member, atol=1e-4)
    second = interpret(out, split="val", top=3, member=2, out=str(tmp_path / "member-2"))
    np.testing.assert_allclose(second.heatmaps, member, atol=1e-4)
    assert json.loads((tmp_path / "member-2" / "interpret.json").read_text())["member"] == 2
    refused = cli_runner("interpret", out, "--member", "3", "--out", tmp_path / "member-3")
    assert refused.exit_code == 2 and "2 members" in refused.output


@pytest.fixture(scope="module")
def multi_run(tmp_path_factory):
    from tests.conftest import tiny_config
    from tfft.training.run import train

    cfg = tiny_config(name="multi", data={"source": "builtin:shapes-multi", "image_size": [32, 32],
                                          "batch_size": 16, "builtin_per_class": 8},
                      training={"steps_per_epoch": 2, "verbose": "quiet"})
    return train(cfg, run_dir=str(tmp_path_factory.mktemp("runs") / "multi")).run_dir


def test_multilabel_run_is_explained_per_label(multi_run):
    result = interpret(multi_run, split="val", top=5)
    doc = json.loads((result.out_dir / "interpret.json").read_text())
    assert doc["task"] == "multi_label" and len(doc["top_losses"]) == 5
    names = (multi_run / "labels.txt").read_text().split()
    assert [r["label"] for r in doc["top_losses"]] == [names[c] for c in result.label]
    p = np.clip(result.probabilities, 1e-7, 1 - 1e-7)
    expected = -(result.labels * np.log(p) + (1 - result.labels) * np.log(1 - p))
    np.testing.assert_allclose(result.losses, expected, rtol=1e-5)
    assert list(result.losses) == sorted(result.losses, reverse=True)
    assert result.heatmaps.shape == (5, 32, 32) and result.files["top_losses"].is_file()
    assert (multi_run / "report.html").is_file()  # written by training


def test_training_draws_top_losses_for_its_report(run_dir, multi_run):
    """Every run's report.html shows its val top losses with heatmaps (multi-label: per label)."""
    for folder, key in ((run_dir, "predicted"), (multi_run, "given")):
        summary = json.loads((folder / "top_losses.json").read_text())
        rows = summary["top_losses"]
        assert 1 <= len(rows) <= 8 and all(key in r for r in rows)
        assert [r["loss"] for r in rows] == sorted((r["loss"] for r in rows), reverse=True)
        assert (folder / "top_losses.png").is_file()
        page = (folder / "report.html").read_text()
        assert "Top losses (val, at the end of training)" in page
