"""Near-duplicate detection: planted byte copies, resized re-encodes and embedding neighbours."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tfft.studies.duplicates import DuplicatePair, find_duplicates, groups, phash_image


def _photo(rng: np.random.Generator, size: int = 96) -> np.ndarray:
    """A smooth random 'photo' (low-frequency structure, like real images, unlike white noise)."""
    coarse = rng.uniform(0, 255, (6, 6, 3)).astype(np.uint8)
    big = Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(big)


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> dict:
    """30 distinct images, plus an exact copy of #0, a resized JPEG of #1, a re-encoded,
    slightly brightened PNG->JPEG of #2, and an unreadable file."""
    root = tmp_path_factory.mktemp("dups")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(30):
        path = root / f"img_{i:02d}.png"
        Image.fromarray(_photo(rng)).save(path)
        paths.append(str(path))
    exact = root / "copy_of_00.png"
    shutil.copyfile(paths[0], exact)
    resized = root / "resized_01.jpg"
    Image.open(paths[1]).resize((61, 61), Image.Resampling.BILINEAR).save(resized, quality=70)
    bright = root / "bright_02.jpg"
    pixels = np.clip(np.asarray(Image.open(paths[2]), dtype=np.int16) + 12, 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(bright, quality=85)
    broken = root / "broken.jpg"
    broken.write_bytes(b"not an image")
    every = paths + [str(exact), str(resized), str(bright), str(broken)]
    return {"paths": every, "originals": paths, "exact": str(exact), "resized": str(resized),
            "bright": str(bright), "broken": str(broken)}


def _pair_set(pairs: list[DuplicatePair]) -> dict[frozenset, DuplicatePair]:
    return {frozenset((p.path_a, p.path_b)): p for p in pairs}


def test_planted_copies_are_found_and_nothing_else(planted):
    pairs = _pair_set(find_duplicates(planted["paths"]))
    originals = planted["originals"]
    exact = pairs[frozenset((originals[0], planted["exact"]))]
    assert (exact.kind, exact.distance) == ("exact", 0.0)
    assert pairs[frozenset((originals[1], planted["resized"]))].kind == "phash"
    assert pairs[frozenset((originals[2], planted["bright"]))].kind == "phash"
    assert len(pairs) == 3  # no false positives among the 30 distinct images
    assert all(planted["broken"] not in key for key in pairs)


def test_embedding_neighbours_add_pairs_the_hash_misses(planted):
    paths = planted["originals"][:6]
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(6, 16))
    emb[5] = emb[3] * 2.0 + rng.normal(scale=1e-3, size=16)  # same direction: cosine distance ~0
    emb[4] = np.nan  # no embedding for this file
    pairs = find_duplicates(paths, emb, phash=False, exact=False)
    assert [(p.path_a, p.path_b, p.kind) for p in pairs] == [(paths[3], paths[5], "embedding")]
    assert pairs[0].distance < 1e-4


def test_groups_are_connected_components(planted):
    paths = planted["paths"]
    ids = groups(paths, find_duplicates(paths))
    assert ids.shape == (len(paths),)
    assert ids[0] == ids[paths.index(planted["exact"])]
    assert ids[1] == ids[paths.index(planted["resized"])]
    assert len(set(ids.tolist())) == len(paths) - 3
    chain = [DuplicatePair("a", "b", 0.0, "exact"), DuplicatePair("c", "b", 0.1, "phash")]
    assert groups(["a", "x", "b", "c", "a"], chain).tolist() == [0, 1, 0, 0, 0]


def test_phash_is_stable_under_resizing_and_far_for_other_images():
    rng = np.random.default_rng(3)
    a, b = _photo(rng, 128), _photo(rng, 128)
    small = np.asarray(Image.fromarray(a).resize((50, 70), Image.Resampling.BILINEAR))
    assert np.sum(phash_image(a) != phash_image(small)) <= 4
    assert np.sum(phash_image(a) != phash_image(b)) > 16


def test_embeddings_of_the_wrong_shape_are_a_user_error(planted):
    from tfft.errors import UserError

    with pytest.raises(UserError, match="embeddings"):
        find_duplicates(planted["originals"][:3], np.zeros((2, 4)))


def test_pets_mini_thousand_images_hash_quickly(pets_mini: Path):
    import time

    paths = sorted(str(p) for p in pets_mini.rglob("*.jpg"))
    start = time.perf_counter()
    pairs = find_duplicates(paths)
    elapsed = time.perf_counter() - start
    print(f"{len(paths)} images: {len(pairs)} pairs in {elapsed:.2f} s")
    assert len(paths) > 1000 and pairs == []  # pets-mini holds no copies at the default threshold


def test_embedding_search_holds_one_block_at_a_time_and_finds_the_single_block_pairs():
    import tracemalloc

    from tfft.studies.duplicates import embedding_pairs

    rng = np.random.default_rng(0)
    emb = rng.standard_normal((3000, 32)).astype(np.float32)
    emb[1::50] = emb[::50] + 0.01 * rng.standard_normal((60, 32)).astype(np.float32)  # 60 close pairs
    whole = embedding_pairs(emb, block_bytes=len(emb) ** 2 * 4)  # one block: the all-pairs answer
    block = 1 << 20  # 512 x 512 similarities
    tracemalloc.start()
    blocked = embedding_pairs(emb, block_bytes=block)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [a.tolist() for a in blocked] == [a.tolist() for a in whole] and len(blocked[0]) >= 60
    # the unit-length copy, one block of distances and its boolean mask (plus the pairs and small change)
    assert peak < emb.nbytes + 1.25 * block + 64 * 1024, f"peak {peak} bytes for {block}-byte blocks"
