"""The multi-index pHash search finds exactly the all-pairs result, and groups are components."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tfft.data.near_duplicates import (group_ids, near_duplicate_groups, pack_bits, phash_hashes, phash_pairs,
                                       unpack_bits)


def _all_pairs(hashes: np.ndarray, threshold: int):
    """The search as it was: every pair's Hamming distance (quadratic; the reference)."""
    bits = unpack_bits(hashes).astype(np.float32)
    distance = bits @ (1 - bits).T + (1 - bits) @ bits.T
    i, j = np.nonzero(np.triu(distance <= threshold + 0.5, 1))
    return i, j, np.round(distance[i, j]).astype(np.int64)


def _planted(n: int, copies: int, seed: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Random 64-bit hashes, `copies` of them re-planted with 0..8 bits flipped, and a clump of
    low-entropy hashes (many in the same bands, as flat images give)."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, np.iinfo(np.uint64).max, n, dtype=np.uint64, endpoint=True)
    hashes[:60] = rng.integers(0, 64, 60).astype(np.uint64)
    planted = []
    chosen = rng.permutation(np.arange(60, n))
    for src, dst in zip(chosen[:copies].tolist(), chosen[copies:2 * copies].tolist()):
        flips = rng.choice(64, int(rng.integers(0, 9)), replace=False)
        hashes[dst] = hashes[src] ^ np.uint64(sum(1 << int(b) for b in flips))
        planted.append((min(src, dst), max(src, dst)))
    return hashes, planted


@pytest.mark.parametrize("threshold", [0, 3, 8, 12])
def test_search_equals_all_pairs_on_planted_duplicates(threshold):
    hashes, planted = _planted(3000, 150, seed=threshold)
    found = phash_pairs(hashes, threshold)
    expected = _all_pairs(hashes, threshold)
    for got, want in zip(found, expected):
        np.testing.assert_array_equal(got, want)
    if threshold >= 8:  # every planted copy (0..8 bits flipped) is among them
        pairs = set(zip(found[0].tolist(), found[1].tolist()))
        assert all(p in pairs for p in planted)


def test_search_equals_all_pairs_on_pets_mini_hashes(pets_mini: Path):
    paths = sorted(str(p) for p in pets_mini.rglob("*.jpg"))
    hashes, ok = phash_hashes(paths)
    assert ok.all() and len(hashes) > 1000
    for threshold in (8, 14, 18):  # none at the default, a few at 14, hundreds at 18 (real hashes cluster)
        found = phash_pairs(hashes, threshold)
        expected = _all_pairs(hashes, threshold)
        for got, want in zip(found, expected):
            np.testing.assert_array_equal(got, want)
    assert len(phash_pairs(hashes, 8)[0]) == 0 and len(phash_pairs(hashes, 18)[0]) > 0


def test_bits_round_trip_and_bool_input():
    bits = np.random.default_rng(0).integers(0, 2, (7, 64)).astype(bool)
    np.testing.assert_array_equal(unpack_bits(pack_bits(bits)), bits)
    assert phash_pairs(bits, 64)[0].tolist() == [0] * 6 + [1] * 5 + [2] * 4 + [3] * 3 + [4] * 2 + [5]


def test_group_ids_are_components_in_first_appearance_order():
    rng = np.random.default_rng(1)
    n = 500
    i, j = rng.integers(0, n, 300), rng.integers(0, n, 300)
    ids = group_ids(n, i, j)
    parent = list(range(n))  # a plain union-find as the reference

    def find(x):
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b in zip(i.tolist(), j.tolist()):
        ra, rb = find(a), find(b)
        parent[max(ra, rb)] = min(ra, rb)
    seen: dict[int, int] = {}
    expected = [seen.setdefault(find(x), len(seen)) for x in range(n)]
    assert ids.tolist() == expected
    chain = group_ids(6, np.arange(4), np.arange(1, 5))  # a long chain collapses to one group
    assert chain.tolist() == [0, 0, 0, 0, 0, 1]


def test_groups_of_files_leave_out_unreadable_and_singletons(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for k in range(4):
        coarse = rng.uniform(0, 255, (5, 5, 3)).astype(np.uint8)
        image = Image.fromarray(coarse).resize((80, 80), Image.Resampling.BICUBIC)
        image.save(tmp_path / f"{k}.png")
        paths.append(str(tmp_path / f"{k}.png"))
    image.resize((50, 50)).save(tmp_path / "3_small.jpg", quality=80)
    (tmp_path / "broken.jpg").write_bytes(b"no")
    every = paths + [str(tmp_path / "3_small.jpg"), str(tmp_path / "broken.jpg")]
    assert near_duplicate_groups(every) == [[paths[3], str(tmp_path / "3_small.jpg")]]


def test_hashes_are_reused_until_the_file_changes(tmp_path):
    """cv planning and `data issues` hash the same files: the second time reads the memo."""
    import os

    from PIL import Image

    rng = np.random.default_rng(5)
    path = tmp_path / "a.bmp"  # uncompressed: two pictures of one size are files of one size
    pictures = [Image.fromarray(rng.uniform(0, 255, (4, 4, 3)).astype(np.uint8)).resize((64, 64)) for _ in range(2)]
    pictures[0].save(path)
    first, _ = phash_hashes([path])
    stat = os.stat(path)
    pictures[1].save(path)
    assert os.stat(path).st_size == stat.st_size  # same size and mtime: taken for the same file
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert phash_hashes([path])[0] == first  # not decoded again
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert phash_hashes([path])[0] != first  # changed: hashed again


@pytest.mark.parametrize("threshold", [0, 8])
def test_runs_that_end_the_sorted_entries_give_every_pair(threshold):
    """Equal hashes share every band key, so their run is the last in the sorted entries (the
    largest key): all of its pairs are found, as the brute force finds them."""
    hashes = np.array([5, 2**64 - 1, 2**64 - 1, 2**64 - 1, 7, 2**64 - 2], dtype=np.uint64)
    found = phash_pairs(hashes, threshold)
    for got, want in zip(found, _all_pairs(hashes, threshold)):
        np.testing.assert_array_equal(got, want)
    assert {(1, 2), (1, 3), (2, 3)} <= set(zip(found[0].tolist(), found[1].tolist()))


@pytest.mark.parametrize("threshold", [3, 8, 12])
def test_search_in_buckets_equals_all_pairs(monkeypatch, threshold):
    """Large searches sort their entries bucket by bucket (by the keys' top bits): small buckets
    here, so 3000 hashes take that path; the pairs are still exactly the brute force's."""
    import tfft.data.near_duplicates as near_duplicates

    monkeypatch.setattr(near_duplicates, "_BUCKET_ENTRIES", 1 << 12)
    hashes, planted = _planted(3000, 150, seed=40 + threshold)
    found = phash_pairs(hashes, threshold)
    for got, want in zip(found, _all_pairs(hashes, threshold)):
        np.testing.assert_array_equal(got, want)
    if threshold >= 8:
        assert set(planted) <= set(zip(found[0].tolist(), found[1].tolist()))
