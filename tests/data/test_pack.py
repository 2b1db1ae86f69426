"""`tfft data pack` and `tfrecord:DIR`: shards that train on the folder's own batches, resumable packs, one-line refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tfft
from tests.conftest import checkpoint_weights, tiny_config, write_image_folder
from tfft.config import DataConfig
from tfft.data import load_splits, pack
from tfft.errors import UserError


@pytest.fixture
def jpeg_folder(tmp_path):
    return write_image_folder(tmp_path / "photos", {"a": 10, "b": 10}, size=32, fmt="jpg")


def _run(source: str, tmp_path, name: str):
    config = tiny_config(data={"source": source}, training={"deterministic": True, "steps_per_epoch": None,
                                                            "verbose": "quiet"})
    config["name"] = name
    return tfft.train(config, run_dir=str(tmp_path / "runs" / name))


def test_packed_folder_trains_to_the_same_weights_bitwise(jpeg_folder, tmp_path):
    lines = []
    index = pack(str(jpeg_folder), str(tmp_path / "packed"), per_shard=6, seed=1, echo=lines.append)
    assert index["counts"] == {"train": 16, "val": 4} and index["classes"] == ["a", "b"]
    assert [s["count"] for s in index["shards"]] == [6, 6, 4, 4]  # train 3 shards, val 1
    assert len(lines) == 5 and "[1/4] train-00000-of-00003.tfrecord: 6 images" in lines[0]
    source = f"tfrecord:{tmp_path / 'packed'}"
    folder, packed = load_splits(DataConfig(source=str(jpeg_folder)), 1), load_splits(DataConfig(source=source), 1)
    for name in ("train", "val"):  # the same examples in the same order: the same batches
        assert np.array_equal(folder[name].labels, packed[name].labels)
        assert [p.split("#")[1] for p in packed[name].paths] == \
            [str(p)[len(str(jpeg_folder)) + 1:] for p in folder[name].paths]
    a, b = _run(str(jpeg_folder), tmp_path, "folder"), _run(source, tmp_path, "packed")
    wa, wb = checkpoint_weights(a.run_dir), checkpoint_weights(b.run_dir)
    assert len(wa) == len(wb) and all(np.array_equal(x, y) for x, y in zip(wa.values(), wb.values()))
    metrics = json.loads((a.run_dir / "metrics.json").read_text())
    assert tfft.evaluate(str(b.run_dir))["accuracy"] == metrics["val"]["accuracy"]  # evaluate reads the shards


def test_pack_resumes_skipping_finished_shards(jpeg_folder, tmp_path):
    out = tmp_path / "packed"
    first = pack(str(jpeg_folder), str(out), per_shard=8, max_side=16, seed=1, echo=lambda line: None)
    assert all(max(s) <= 16 for s in json.loads((out / "train-00000-of-00002.tfrecord.json").read_text())["size"])
    (out / "train-00001-of-00002.tfrecord.json").unlink()  # as if stopped while writing the second shard
    (out / "index.json").unlink()
    lines = []
    again = pack(str(jpeg_folder), str(out), per_shard=8, max_side=16, seed=1, echo=lines.append)
    assert "skipped" in lines[0] and "skipped" not in lines[1] and "skipped" in lines[2]
    assert again == first
    with pytest.raises(UserError, match="already holds files"):  # another pack's options: refused
        pack(str(jpeg_folder), str(out), per_shard=4, seed=1, echo=lambda line: None)


def test_pack_and_tfrecord_errors_exit_2_with_one_line(cli_runner, jpeg_folder, tmp_path, user_folder):
    result = cli_runner("data", "pack", str(jpeg_folder), "--out", str(user_folder))
    assert result.exit_code == 2 and "already holds files" in result.output and len(result.output.splitlines()) == 1
    result = cli_runner("data", "pack", "builtin:shapes", "--out", str(tmp_path / "x"))
    assert result.exit_code == 2 and "no image files to pack" in result.output
    with pytest.raises(UserError, match="index.json not found"):  # refused before TensorFlow starts
        tfft.train(tiny_config(data={"source": f"tfrecord:{tmp_path / 'nothing'}"}))


def test_a_pass_in_order_streams_the_shards_as_the_folder_reads_its_files(jpeg_folder, tmp_path):
    from tfft.data import make_dataset
    from tfft.data.sources.tfrecord import stream

    pack(str(jpeg_folder), str(tmp_path / "packed"), per_shard=3, seed=1, echo=lambda line: None)
    cfg = DataConfig(source=f"tfrecord:{tmp_path / 'packed'}", image_size=(24, 24), batch_size=4)
    packed = load_splits(cfg, seed=1)
    folder = load_splits(cfg.model_copy(update={"source": str(jpeg_folder)}), seed=1)
    for name in ("train", "val"):
        got = [b for b in make_dataset(packed, name, cfg, seed=1, training=False).as_numpy_iterator()]
        want = [b for b in make_dataset(folder, name, cfg, seed=1, training=False).as_numpy_iterator()]
        assert len(got) == len(want) and all(np.array_equal(g[0], w[0]) and np.array_equal(g[1], w[1])
                                             for g, w in zip(got, want))
    train = packed["train"]  # 16 images in 6 shards: worker 0 of 2 reads shards 0, 2, 4
    keys = [k.decode() for k in stream(train, worker=(0, 2)).map(lambda e: e["key"]).as_numpy_iterator()]
    assert len(keys) == 3 + 3 + 3 and set(keys) < {p.split("#")[1] for p in train.paths}


def test_multi_worker_training_streams_disjoint_shard_files_covering_the_split(jpeg_folder, tmp_path):
    import tensorflow as tf

    from tfft.data import make_dataset
    from tfft.data.sources.tfrecord import worker_shards

    pack(str(jpeg_folder), str(tmp_path / "packed"), per_shard=4, seed=1, echo=lambda line: None)
    cfg = DataConfig(source=f"tfrecord:{tmp_path / 'packed'}", image_size=(24, 24), batch_size=4)
    splits = load_splits(cfg, seed=1)
    train = splits["train"]  # 16 images in 4 shards: worker 0 of 2 reads shards 0 and 2, worker 1 shards 1 and 3
    in_order = np.concatenate([b[0] for b in make_dataset(splits, "train", cfg, seed=1, training=False)
                               .as_numpy_iterator()])
    example_of = {image.tobytes(): i for i, image in enumerate(in_order)}
    assert len(example_of) == 16
    shard_of = {i: train.shards[int(train.records[i, 0])] for i in range(16)}

    def worker(index: int, epochs=range(0, 2), skip=0) -> list[list[int]]:
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=index, num_replicas_in_sync=2)
        ds = make_dataset(splits, "train", cfg, seed=1, training=True, epochs=epochs, skip_batches=skip,
                          input_context=context)
        batches = []
        for images, labels in ds.as_numpy_iterator():
            found = [example_of[image.tobytes()] for image in images]
            assert labels.tolist() == train.labels[found].tolist()
            batches.append(found)
        return batches

    got = {index: worker(index) for index in (0, 1)}
    files = {index: {shard_of[i] for batch in got[index] for i in batch} for index in (0, 1)}
    assert files[0] == set(worker_shards(train, (0, 2))) and files[1] == set(worker_shards(train, (1, 2)))
    assert not files[0] & files[1] and files[0] | files[1] == set(train.shards[:4])  # disjoint, all the files
    for index in (0, 1):  # per epoch: 16 / 4 = 4 global steps, a batch of 4 / 2 = 2 from each worker
        assert [len(b) for b in got[index]] == [2] * 8
        epochs = [sorted(i for b in got[index][e * 4:(e + 1) * 4] for i in b) for e in (0, 1)]
        assert epochs[0] == epochs[1] and len(set(epochs[0])) == 8  # each epoch reads all its 8 examples
        assert [i for b in got[index][:4] for i in b] != [i for b in got[index][4:] for i in b]  # reshuffled
    assert worker(0, epochs=range(0, 1), skip=1) == got[0][1:4]  # resuming inside an epoch: the same batches

    one = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0, num_replicas_in_sync=1)
    single = [b for b in make_dataset(splits, "train", cfg, seed=1, training=True, input_context=one)
              .as_numpy_iterator()]
    plain = [b for b in make_dataset(splits, "train", cfg, seed=1, training=True).as_numpy_iterator()]
    assert len(single) == len(plain) and all(np.array_equal(a[0], b[0]) for a, b in zip(single, plain))
