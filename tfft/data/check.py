"""`tfft data check`: what is in an image folder, and what is wrong with it.

Counts images per class, empty classes, unreadable files (with reasons), odd formats (CMYK,
16-bit, palette, EXIF-rotated, ...), exact duplicates (by content hash) and the size
distribution. A folder with `train/` (and `val/`, `test/`) inside is reported per split too.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Union

import numpy as np

from tfft.data import decode as _decode
from tfft.data.sources import SPLIT_NAMES
from tfft.errors import UserError
from tfft.reporting.wording import plural


def _hash(path: str) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _classes_of(root: Path) -> tuple[dict[str, list[str]], dict[str, dict[str, int]], list[str]]:
    """Files per class (all splits merged), per-split counts placeholder, and the split names."""
    from tfft.data.sources import list_class_folders, list_images

    split_dirs = [s for s in SPLIT_NAMES if (root / s).is_dir()]
    files: dict[str, list[str]] = {}
    split_of: dict[str, dict[str, list[str]]] = {}
    if "train" in split_dirs:
        for split in split_dirs:
            split_of[split] = {}
            for name in list_class_folders(root / split):
                found = list_images(root / split / name)
                split_of[split][name] = found
                files.setdefault(name, []).extend(found)
    else:
        for name in list_class_folders(root):
            files[name] = list_images(root / name)
        split_dirs = []
    return files, split_of, split_dirs  # type: ignore[return-value]


def check_folder(path: Union[str, os.PathLike], *, duplicates: bool = True) -> dict[str, Any]:
    """Inspect an image folder (class subfolders, optionally under train/ val/ test/).

    Args:
        path: the folder.
        duplicates: hash file contents to find exact duplicates.

    Returns:
        A dict with the contract's keys `classes` ({name: readable images}), `empty_classes`,
        `bad_files` ([{path, reason}]), `total_images` (images that decode), plus `path`,
        `num_classes`, `imbalance_ratio` (largest / smallest non-empty class), `splits`
        (per-split class counts when train/ exists), `odd_formats` ({kind: count}), `formats`,
        `duplicates` ([[path, ...], ...]), `duplicate_files`, `sizes` ({min, median, max} as
        [width, height] by area), `ignored_files` (non-image or hidden files).

    Raises:
        UserError: the path does not exist or is not a folder.

    Example:
    >>> report = check_folder("photos/")  # doctest: +SKIP
    >>> report["classes"], report["bad_files"][:1]  # doctest: +SKIP
    ({'cat': 400, 'dog': 398}, [{'path': 'photos/dog/x.jpg', 'reason': 'empty file (0 bytes)'}])
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise UserError(str(path), "folder not found",
                        "give a folder of class subfolders, e.g. photos/ with photos/cat/*.jpg")
    if not root.is_dir():
        raise UserError(str(path), "expected a folder of class subfolders, got a file",
                        "give the folder that holds one subfolder per class")
    files, split_of, split_dirs = _classes_of(root)
    every = [p for name in sorted(files) for p in files[name]]
    probes = {p.path: p for p in _decode.scan_files(every)}
    good = {p for p in every if probes[p].ok}
    classes = {name: sum(1 for p in files[name] if p in good) for name in sorted(files)}
    empty = [name for name, count in classes.items() if count == 0]
    bad = [{"path": p, "reason": probes[p].reason or "unreadable"} for p in every if not probes[p].ok]
    nonzero = [c for c in classes.values() if c > 0]
    odd = Counter(kind for p in good for kind in probes[p].kinds)
    formats = Counter(str(probes[p].format) for p in good)
    routes = Counter("pil" if probes[p].route == _decode.ROUTE_PIL else "tf" for p in good)
    sizes = [(probes[p].width, probes[p].height) for p in good]
    size_stats: dict[str, Any] = {}
    if sizes:
        by_area = sorted(sizes, key=lambda s: (s[0] * s[1], s))
        widths = np.asarray([s[0] for s in sizes])
        heights = np.asarray([s[1] for s in sizes])
        size_stats = {
            "min": list(by_area[0]), "median": list(by_area[len(by_area) // 2]), "max": list(by_area[-1]),
            "width": {"min": int(widths.min()), "median": float(np.median(widths)), "max": int(widths.max())},
            "height": {"min": int(heights.min()), "median": float(np.median(heights)), "max": int(heights.max())},
            "distinct": len(set(sizes)),
        }
    dup_groups: list[list[str]] = []
    if duplicates and good:
        ordered = [p for p in every if p in good]
        with ThreadPoolExecutor(max_workers=min(16, 4 * (os.cpu_count() or 1))) as pool:
            digests = list(pool.map(_hash, ordered))
        groups: dict[str, list[str]] = defaultdict(list)
        for p, digest in zip(ordered, digests):
            groups[digest].append(p)
        dup_groups = [g for g in groups.values() if len(g) > 1]
    ignored = _count_ignored(root)
    report: dict[str, Any] = {
        "path": str(root),
        "classes": classes,
        "empty_classes": empty,
        "bad_files": bad,
        "total_images": len(good),
        "num_classes": len(classes),
        "imbalance_ratio": (round(max(nonzero) / min(nonzero), 3) if nonzero else None),
        "odd_formats": dict(sorted(odd.items())),
        "formats": dict(sorted(formats.items())),
        "decode_routes": dict(sorted(routes.items())),
        "sizes": size_stats,
        "duplicates": dup_groups,
        "duplicate_files": sum(len(g) - 1 for g in dup_groups),
        "ignored_files": ignored,
    }
    if split_dirs:
        report["splits"] = {
            split: {name: sum(1 for p in split_of[split].get(name, []) if p in good)
                    for name in sorted(split_of[split])}
            for split in split_dirs}
        train_names = sorted(split_of["train"])
        report["class_mismatch"] = {split: sorted(split_of[split]) for split in split_dirs
                                    if sorted(split_of[split]) != train_names}
    return report


def _count_ignored(root: Path) -> int:
    count = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        count += sum(1 for name in filenames if not _decode.is_image_file(name))
    return count


def format_report(report: dict[str, Any], max_listed: int = 20) -> str:
    """The human-readable text of a `check_folder` report."""
    lines = [f"{report['path']}: {plural(report['total_images'], 'readable image')} in {plural(report['num_classes'], 'class')}"]
    width = max([len(n) for n in report["classes"]] + [5])
    splits = report.get("splits")
    if splits:
        header = f"  {'class':<{width}}  " + "  ".join(f"{s:>6}" for s in splits) + "   total"
        lines.append(header)
        for name, count in report["classes"].items():
            per = "  ".join(f"{splits[s].get(name, 0):>6}" for s in splits)
            lines.append(f"  {name:<{width}}  {per}  {count:>6}")
    else:
        for name, count in report["classes"].items():
            lines.append(f"  {name:<{width}}  {count:>6}")
    if report["imbalance_ratio"] is not None:
        lines.append(f"imbalance ratio (largest/smallest class): {report['imbalance_ratio']}")
    if report["empty_classes"]:
        lines.append(f"empty classes: {', '.join(report['empty_classes'])}")
    for split, names in (report.get("class_mismatch") or {}).items():
        lines.append(f"warning: {split}/ classes {names} differ from train/")
    sizes = report["sizes"]
    if sizes:
        lines.append("sizes (WxH by area): min {}x{}, median {}x{}, max {}x{} ({} distinct)".format(
            *sizes["min"], *sizes["median"], *sizes["max"], sizes["distinct"]))
    if report["formats"]:
        lines.append("formats: " + ", ".join(f"{k} {v}" for k, v in report["formats"].items()))
    if report["odd_formats"]:
        lines.append("odd formats (handled): " + ", ".join(f"{k} {v}" for k, v in report["odd_formats"].items()))
    if report["duplicates"]:
        lines.append(f"exact duplicates: {report['duplicate_files']} extra copies in {len(report['duplicates'])} groups")
        for group in report["duplicates"][:5]:
            lines.append("  " + " == ".join(group[:3]) + (" ..." if len(group) > 3 else ""))
    bad = report["bad_files"]
    if bad:
        lines.append(f"unreadable files: {len(bad)} (skipped in training)")
        for item in bad[:max_listed]:
            lines.append(f"  {item['path']}: {item['reason']}")
        if len(bad) > max_listed:
            lines.append(f"  ... and {len(bad) - max_listed} more (use --json for all)")
    else:
        lines.append("unreadable files: none")
    if report["ignored_files"]:
        lines.append(f"ignored (not images or hidden): {report['ignored_files']} files")
    return "\n".join(lines)
