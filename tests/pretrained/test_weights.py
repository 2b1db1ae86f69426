"""The converted-weights cache: one file per source, an ordinary file mode, the umask never touched."""

from __future__ import annotations

import os
import stat

from tfft.pretrained import weights


def test_cached_file_has_the_ordinary_mode_and_the_umask_is_never_set(tmp_path, monkeypatch):
    monkeypatch.setattr(weights, "cache_folder", lambda *a, **k: tmp_path / "models")  # Keras reads KERAS_HOME at import
    source = tmp_path / "weights.pth"
    source.write_bytes(b"original weights")
    calls = []
    real_umask = os.umask

    def spy(mask):  # setting the umask, even for a moment, races with other threads creating files
        calls.append(mask)
        return real_umask(mask)

    previous = real_umask(0o027)
    try:
        monkeypatch.setattr(os, "umask", spy)
        path = weights.converted("tiny", source, lambda name, src, target: target.write_bytes(b"h5"))
    finally:
        real_umask(previous)
    assert calls == []
    assert path.read_bytes() == b"h5" and stat.S_IMODE(path.stat().st_mode) == 0o640  # 0666 less the umask
    assert path.parent == tmp_path / "models" and sorted(p.name for p in path.parent.iterdir()) == [path.name]
