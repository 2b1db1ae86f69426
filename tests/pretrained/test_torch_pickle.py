"""The restricted reader of torch's legacy format: real files read, foreign globals refused."""

from __future__ import annotations

import io
import os
import pickle
import struct
import sys

import numpy as np
import pytest

from tfft.errors import UserError
from tfft.pretrained.torch_pickle import (MAGIC_NUMBER, PROTOCOL_VERSION, UnsafeWeightsFile,
                                          read_state_dict)


def test_reads_lite0_without_torch(lite_file):
    state = read_state_dict(lite_file("efficientnet_lite0"))
    assert len(state) == 296
    values = sum(a.size for name, a in state.items() if not name.endswith("num_batches_tracked"))
    assert values == 4_694_024
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_conv_stem.weight"].dtype == np.float32
    assert state["_bn0.num_batches_tracked"].dtype == np.int64
    assert state["_fc.weight"].shape == (1000, 1280)
    assert np.isfinite(state["_fc.weight"]).all() and state["_bn0.running_var"].min() >= 0
    assert "torch" not in sys.modules


def _legacy_file(path, payload_pickle: bytes, keys=(), storages=b"") -> None:
    with open(path, "wb") as handle:
        for head in (MAGIC_NUMBER, PROTOCOL_VERSION, {"little_endian": True}):
            pickle.dump(head, handle, protocol=2)
        handle.write(payload_pickle)
        pickle.dump(list(keys), handle, protocol=2)
        handle.write(storages)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_refuses_a_foreign_global_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    _legacy_file(path, pickle.dumps({"_conv_stem.weight": _Evil(marker)}, protocol=2))
    with pytest.raises(UnsafeWeightsFile) as info:
        read_state_dict(path)
    assert not marker.exists()
    assert isinstance(info.value, UserError) and info.value.where == str(path)
    assert "system" in str(info.value) and "only hold tensors" in str(info.value)


def test_refuses_a_foreign_global_in_the_header(tmp_path):
    path = tmp_path / "evil_head.pth"
    path.write_bytes(pickle.dumps(_Evil(tmp_path / "pwned"), protocol=2))
    with pytest.raises(UnsafeWeightsFile):
        read_state_dict(path)
    assert not (tmp_path / "pwned").exists()


class _Storage:
    pass


class _Tensor:
    def __init__(self, storage, offset, shape, stride):
        self.args = (storage, offset, tuple(shape), tuple(stride), False, None)

    def __reduce__(self):
        return (_rebuild_tensor_v2, self.args)


def _rebuild_tensor_v2(*args):  # a stand-in named like torch's, re-homed below
    raise AssertionError("never called")


def test_reads_strided_views_and_rejects_truncation(tmp_path, monkeypatch):
    import types

    fake_torch = types.ModuleType("torch")
    fake_utils = types.ModuleType("torch._utils")
    fake_torch.FloatStorage = type("FloatStorage", (), {"__module__": "torch"})
    _rebuild_tensor_v2.__module__ = "torch._utils"
    fake_utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    monkeypatch.setitem(sys.modules, "torch._utils", fake_utils)

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _Storage):
                return ("storage", fake_torch.FloatStorage, "0", "cpu", 6, None)
            return None

    data = np.arange(6, dtype="<f4")
    buffer = io.BytesIO()
    # a 3x2 view of a 2x3 storage: the transpose, as torch stores `w.t()`
    Pickler(buffer, protocol=2).dump({"w": _Tensor(_Storage(), 0, (3, 2), (1, 3))})
    path = tmp_path / "t.pth"
    _legacy_file(path, buffer.getvalue(), keys=["0"], storages=struct.pack("<q", 6) + data.tobytes())
    got = read_state_dict(path)["w"]
    np.testing.assert_array_equal(got, data.reshape(2, 3).T)

    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(UserError) as info:
        read_state_dict(path)
    assert "truncated" in str(info.value)
