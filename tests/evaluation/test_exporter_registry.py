"""A format registered from outside tfft (here a toy that copies model.keras) exports through the
public API like the built-in ones: parity, latency and size come from its own `check`."""

from __future__ import annotations

import time

import numpy as np

import tfft
from tfft.evaluation import EXPORTERS, Exporter
from tfft.evaluation.exporters import RuntimeCheck


class KerasCopy(Exporter):
    """A toy format: the model saved again as .keras, checked by loading it back with Keras."""

    name = "keras-copy"
    file_name = "copy.keras"

    def export(self, model, path, job):
        model.save(path)

    def check(self, path, inputs, threads):
        import keras

        model = keras.saving.load_model(path)
        probabilities = np.asarray(model.predict(np.stack(inputs), verbose=0))
        start = time.perf_counter()
        model.predict(np.stack(inputs[:1]), verbose=0)
        return RuntimeCheck(probabilities, (time.perf_counter() - start) * 1000.0, f"keras {keras.__version__}",
                            threads, True)


def test_a_registered_toy_exporter_exports_through_the_public_api(run_dir, tmp_path, cli_runner):
    with EXPORTERS.registered("keras-copy", KerasCopy):
        assert "keras-copy" in tfft.export_formats()  # the list `tfft export --format` offers
        result = tfft.export(run_dir, format="keras-copy", out=str(tmp_path / "toy.keras"))
        cli = cli_runner("export", run_dir, "--format", "keras-copy", "--out", tmp_path / "cli.keras")
        assert cli.exit_code == 0, cli.output
        assert (tmp_path / "cli.keras").is_file()
    assert "keras-copy" not in EXPORTERS and "keras-copy" not in tfft.export_formats()
    assert (tmp_path / "toy.keras").is_file() and result.size_bytes == (tmp_path / "toy.keras").stat().st_size
    assert result.format == "keras-copy" and result.runtime.startswith("keras ")
    assert result.parity_top1 == 100.0 and result.parity_max_abs_diff < 1e-6
