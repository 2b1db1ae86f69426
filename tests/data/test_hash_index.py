"""Perceptual and SHA-256 hashes kept in the scan index: a later process decodes only what changed."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tfft.data import index as scan_index
from tfft.data import near_duplicates
from tfft.data import probe as probing
from tfft.studies.duplicates import find_duplicates


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TFFT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TF_CONFIG", raising=False)
    probing.clear_cache()
    near_duplicates._MEMO.clear()  # each search below starts as a new process would
    yield
    probing.clear_cache()
    near_duplicates._MEMO.clear()


@pytest.fixture
def decoded(monkeypatch):
    """The files the pHash search decodes."""
    seen: list[str] = []
    phash_of = near_duplicates._phash_of

    def counting(path):
        seen.append(path)
        return phash_of(path)

    monkeypatch.setattr(near_duplicates, "_phash_of", counting)
    return seen


def _folder(root):
    """Two classes of distinct pictures, one resized copy and one exact copy."""
    rng = np.random.default_rng(3)
    paths = []
    for k in range(6):
        (root / f"c{k % 2}").mkdir(parents=True, exist_ok=True)
        picture = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).resize((64, 64))
        paths.append(root / f"c{k % 2}" / f"{k}.png")
        picture.save(paths[-1])
    Image.open(paths[0]).resize((48, 48)).save(root / "c0" / "0_small.jpg", quality=85)
    (root / "c1" / "1_copy.png").write_bytes(paths[1].read_bytes())
    return sorted(str(p) for p in root.rglob("*.*"))


def test_a_second_search_decodes_no_image_and_finds_the_same_pairs(tmp_path, cache, decoded):
    root = tmp_path / "photos"
    paths = _folder(root)
    scan_index.scan(str(root), paths)
    first = find_duplicates(paths, source=str(root))
    assert len(decoded) == len(paths)
    assert {(p.kind, p.path_b.rsplit("/", 1)[1]) for p in first} == {("phash", "0_small.jpg"), ("exact", "1_copy.png")}
    near_duplicates._MEMO.clear()  # a new process: nothing memoised, the index holds the hashes
    decoded.clear()
    assert find_duplicates(paths, source=str(root)) == first
    assert decoded == []
    assert find_duplicates(paths) == first  # the same pairs as without the index


def test_a_changed_file_alone_is_hashed_again(tmp_path, cache, decoded):
    root = tmp_path / "photos"
    paths = _folder(root)
    scan_index.scan(str(root), paths)
    hashes, ok = near_duplicates.phash_hashes(paths, source=str(root))
    changed = paths[2]
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(changed)
    scan_index.scan(str(root), paths)  # the index sees the new version (as the next start's scan would)
    near_duplicates._MEMO.clear()
    decoded.clear()
    again, ok_again = near_duplicates.phash_hashes(paths, source=str(root))
    assert decoded == [changed]
    assert ok_again.all() and (again != hashes).tolist() == [p == changed for p in paths]
    groups = near_duplicates.near_duplicate_groups(paths, source=str(root))
    assert decoded == [changed] and groups == near_duplicates.near_duplicate_groups(paths)
