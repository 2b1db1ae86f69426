"""`tfft data check`: what is in an image folder or manifest, and what is wrong with it.

Counts images per class, empty classes, unreadable files (with reasons), odd formats (CMYK,
16-bit, palette, EXIF-rotated, ...), exact duplicates (by content hash) and the size
distribution. A folder with `train/` (and `val/`, `test/`, or their aliases) inside is reported
per split too. The verdict is `tfft train`'s: the source is listed by `load_splits` with the
default data settings and judged by `tfft.data.rules.verdict`, so what train refuses is an
error here and what train warns about is a warning.

The folder or the manifest's files may be on any file system `tf.io.gfile` knows (`gs://`,
`ram://`): everything is listed and read through `tfft.data.fs`, scanned and hashed through
the source's persistent index (`tfft.data.index`), as `tfft train` does.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Union

import numpy as np

from tfft.config import Config, DataConfig
from tfft.data import decode as _decode
from tfft.data import fs as _fs
from tfft.data import index as _index
from tfft.data import rules as _rules
from tfft.errors import UserError
from tfft.wording import plural


def _classes_of(root: Any) -> tuple[dict[str, list[str]], dict[str, dict[str, list[str]]], dict[str, Path]]:
    """Files per class (all splits merged), files per split and class, and the split folders."""
    from tfft.data.sources import list_class_folders, list_images

    try:
        split_dirs = _rules.split_folders(root)
    except UserError:  # a mixed layout: the verdict says so; list every folder as a class
        split_dirs = {}
    files: dict[str, list[str]] = {}
    split_of: dict[str, dict[str, list[str]]] = {}
    for split, folder in split_dirs.items():
        split_of[split] = {}
        for name in list_class_folders(folder):
            found = list_images(folder / name)
            split_of[split][name] = found
            files.setdefault(name, []).extend(found)
    if not split_dirs:
        for name in list_class_folders(root):
            files[name] = list_images(root / name)
    return files, split_of, split_dirs


def _classes_of_splits(splits: Any) -> tuple[dict[str, list[str]], dict[str, dict[str, list[str]]]]:
    """Files per class and per split and class of a listed manifest (readable files only)."""
    files: dict[str, list[str]] = {name: [] for name in splits.class_names}
    split_of: dict[str, dict[str, list[str]]] = {}
    for split, part in splits.splits.items():
        split_of[split] = {name: [] for name in splits.class_names}
        labels = np.asarray(part.labels)
        for path, label in zip(part.paths, labels):
            for index in (np.flatnonzero(label) if labels.ndim == 2 else [int(label)]):
                name = splits.class_names[int(index)]
                split_of[split][name].append(str(path))
                files[name].append(str(path))
    return files, split_of


def _error_entry(exc: UserError) -> dict[str, Any]:
    return {"kind": getattr(exc, "kind", "error"), "where": exc.where, "message": exc.message,
            "hint": exc.hint, "paths": list(getattr(exc, "paths", [])), "text": str(exc)}


def judge(source: str) -> tuple[Any, list[dict[str, Any]], list[dict[str, Any]]]:
    """List `source` as `tfft train` would (default data settings) and apply train's rules.

    Returns:
        `(splits or None, errors, warnings)`: `errors` are what train refuses (`{kind, where,
        message, hint, paths, text}`), `warnings` what it warns about (`{kind, message, ...}`).
    """
    from tfft.data.sources import load_splits

    try:
        splits = load_splits(DataConfig(source=source), Config.model_fields["seed"].default, echo=False)
    except UserError as exc:
        return None, [_error_entry(exc)], []
    found = _rules.verdict(splits)
    return splits, [_error_entry(e) for e in found.errors], list(splits.findings) + found.warnings


def check_folder(path: Union[str, os.PathLike], *, duplicates: bool = True,
                 near_duplicates: bool = False) -> dict[str, Any]:
    """Inspect an image folder (class subfolders, optionally under train/ val/ test/) or `csv:` manifest.

    Args:
        path: the folder, or `csv:path/to/manifest.csv`.
        duplicates: hash file contents to find exact duplicates.
        near_duplicates: also group the readable images whose perceptual hashes are within
            `tfft.data.near_duplicates.PHASH_THRESHOLD` bits (resized, re-encoded or lightly
            edited copies; no model): the report adds `near_duplicate_groups` ([[path, ...], ...]).

    Returns:
        A dict with the contract's keys `classes` ({name: readable images}), `empty_classes`,
        `bad_files` ([{path, reason}]), `total_images` (images that decode), plus `path`,
        `num_classes`, `imbalance_ratio` (largest / smallest non-empty class), `splits`
        (per-split class counts when the source has splits), `split_folders` ({split: folder
        name}, e.g. `{"val": "validation"}`), `odd_formats` ({kind: count}), `formats`,
        `duplicates` ([[path, ...], ...]), `duplicate_files`, `sizes` ({min, median, max} as
        [width, height] by area), `ignored_files` (non-image or hidden files), and train's
        verdict: `errors` ([{kind, where, message, hint, paths, text}]: what `tfft train`
        refuses, e.g. kind `leak`, `label_conflict`, `split_layout`) and `warnings` ([{kind,
        message, count, ...}]: e.g. `repeated_rows`, `same_file_in_two_classes`, `no_val_images`
        with its `classes`).

    Raises:
        UserError: the path does not exist or is not a folder (or a manifest).

    Example:
    >>> report = check_folder("photos/")  # doctest: +SKIP
    >>> report["classes"], report["bad_files"][:1]  # doctest: +SKIP
    ({'cat': 400, 'dog': 398}, [{'path': 'photos/dog/x.jpg', 'reason': 'empty file (0 bytes)'}])
    """
    from tfft.data.sources import source_of

    source = os.fspath(path)
    is_csv = source_of(source).name == "csv"
    root = _fs.path(source_of(source).location)  # a Path, or a GPath (gs://, ram://, ...)
    if not root.exists():
        raise UserError(source, "manifest not found" if is_csv else "folder not found",
                        "give a folder of class subfolders, e.g. photos/ with photos/cat/*.jpg, or csv:manifest.csv")
    if is_csv != root.is_file():
        raise UserError(source, "expected a folder of class subfolders, got a file" if not is_csv else
                        "expected a CSV file, got a folder",
                        "give the folder that holds one subfolder per class, or csv:manifest.csv")
    listed_as = f"csv:{root}" if is_csv else str(root)  # the source, as the scan index knows it
    splits, errors, warnings = judge(listed_as)
    extra_bad: list[dict[str, str]] = []
    if is_csv:
        files, split_of = _classes_of_splits(splits) if splits is not None else ({}, {})
        split_dirs = {name: Path(name) for name in split_of}
        extra_bad = list(splits.skipped) if splits is not None else []
    else:
        files, split_of, split_dirs = _classes_of(root)
    every = list(dict.fromkeys(p for name in sorted(files) for p in files[name]))
    probes = {p.path: p for p in _index.scan(listed_as, every)}
    good = {p for p in every if probes[p].ok}
    classes = {name: sum(1 for p in files[name] if p in good) for name in sorted(files)}
    report: dict[str, Any] = {
        "path": source,
        "classes": classes,
        "empty_classes": [name for name, count in classes.items() if count == 0],
        "bad_files": [{"path": p, "reason": probes[p].reason or "unreadable"} for p in every if not probes[p].ok]
                     + extra_bad,
        "total_images": len(good),
        "num_classes": len(classes),
    }
    nonzero = [c for c in classes.values() if c > 0]
    report["imbalance_ratio"] = round(max(nonzero) / min(nonzero), 3) if nonzero else None
    report.update(_file_stats([p for p in every if p in good], probes, duplicates, listed_as))
    if near_duplicates:
        from tfft.data.near_duplicates import near_duplicate_groups

        report["near_duplicate_groups"] = near_duplicate_groups([p for p in every if p in good], source=listed_as)
    report["ignored_files"] = 0 if is_csv else _count_ignored(root)
    if split_dirs:
        report.update(_split_counts(split_of, split_dirs, good, folders=not is_csv))
    report["errors"] = errors
    report["warnings"] = warnings
    return report


def _split_counts(split_of: dict[str, dict[str, list[str]]], split_dirs: dict[str, Path], good: set[str],
                  folders: bool) -> dict[str, Any]:
    """`splits` (per-split class counts of readable images), `class_mismatch` and `split_folders`."""
    counts: dict[str, Any] = {
        "splits": {split: {name: sum(1 for p in split_of[split].get(name, []) if p in good)
                           for name in sorted(split_of[split])}
                   for split in split_dirs}}
    train_names = sorted(split_of.get("train", {}))
    counts["class_mismatch"] = {split: sorted(split_of[split]) for split in split_dirs
                                if sorted(split_of[split]) != train_names}
    if folders:
        counts["split_folders"] = {split: folder.name for split, folder in split_dirs.items()}
    return counts


def _file_stats(good: list[str], probes: dict[str, Any], duplicates: bool, source: str) -> dict[str, Any]:
    """Imbalance, formats, decode routes, sizes and exact duplicates of the readable files."""
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
        with ThreadPoolExecutor(max_workers=min(16, 4 * (os.cpu_count() or 1))) as pool:
            digests = _index.values(source, good, "sha256", lambda paths: list(pool.map(_index.sha256_file, paths)))
        groups: dict[str, list[str]] = defaultdict(list)
        for p, digest in zip(good, digests):
            groups[digest].append(p)
        dup_groups = [g for g in groups.values() if len(g) > 1]
    return {
        "odd_formats": dict(sorted(odd.items())),
        "formats": dict(sorted(formats.items())),
        "decode_routes": dict(sorted(routes.items())),
        "sizes": size_stats,
        "duplicates": dup_groups,
        "duplicate_files": sum(len(g) - 1 for g in dup_groups),
    }


def _count_ignored(root: Any) -> int:
    count = 0
    for dirpath, dirnames, filenames in _fs.walk(str(root)):
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
    aliased = {split: name for split, name in (report.get("split_folders") or {}).items() if name != split}
    if aliased:
        lines.append("split folders: " + ", ".join(f"{name}/ read as {split}" for split, name in aliased.items()))
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
    if "near_duplicate_groups" in report:
        from tfft.data.near_duplicates import PHASH_THRESHOLD

        near = report["near_duplicate_groups"]
        lines.append(f"near-duplicates (perceptual hash within {PHASH_THRESHOLD} of 64 bits): "
                     + (f"{plural(sum(len(g) for g in near), 'image')} in {plural(len(near), 'group')}" if near else "none"))
        for group in near[:5]:
            lines.append("  " + " ~ ".join(group[:3]) + (" ..." if len(group) > 3 else ""))
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
    for warning in report.get("warnings", []):
        lines.append(f"warning: {warning['message']}")
    return "\n".join(lines)
