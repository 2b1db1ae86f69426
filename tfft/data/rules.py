"""What a dataset must be to train on: split folder names, manifest conflicts, the shared verdict.

One table names the split folders (`SPLIT_ALIASES`: `validation/` is val, `testing/` is test,
...). A folder source either holds class folders or split folders, never both. A manifest lists a
file once: the same file with two labels, or in two splits (a leak: validation would score
images the model trained on), is refused; an exact repeated row is dropped with a warning.
`verdict(splits)` holds the rules `tfft train` applies after listing the data, so that
`tfft data check` reaches the same verdict with the same code.

Example:
>>> split_of_name("Validation"), split_of_name("dogs")
('val', None)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from tfft.errors import DataError, UserError
from tfft.wording import plural

SPLIT_NAMES = ("train", "val", "test")
# The one table of split names: folder names and a manifest's `split` cells, read case-insensitively.
SPLIT_ALIASES: dict[str, tuple[str, ...]] = {
    "train": ("train", "training"),
    "val": ("val", "valid", "validation", "dev", "eval"),
    "test": ("test", "testing"),
}
MAX_LISTED = 3  # files named in a one-line message


class SourceConflict(DataError):
    """A `DataError` about particular files (a leak, a label conflict, a mixed layout).

    `tfft data check --json` reports its `kind` and `paths`.
    """

    def __init__(self, kind: str, where: str, message: str, hint: Optional[str] = None,
                 paths: Sequence[str] = ()):
        super().__init__(where, message, hint)
        self.kind = kind
        self.paths = list(paths)


def split_of_name(name: str) -> Optional[str]:
    """The split (`train`, `val`, `test`) a folder or manifest cell names, or None.

    Example:
    >>> split_of_name("dev"), split_of_name("TESTING"), split_of_name("cat")
    ('val', 'test', None)
    """
    low = str(name).strip().lower()
    return next((split for split, names in SPLIT_ALIASES.items() if low in names), None)


def aliases_text() -> str:
    """`train (training), val (valid, validation, dev, eval), test (testing)`: for hints."""
    return ", ".join(f"{s} ({', '.join(n[1:])})" if len(n) > 1 else s for s, n in SPLIT_ALIASES.items())


def list_class_folders(root: Path) -> list[str]:
    """Sorted, non-hidden subfolder names of `root`."""
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def split_folders(root: Path) -> dict[str, Path]:
    """The split folders of an image folder, `{split: folder}` in train, val, test order.

    Empty for a folder of class subfolders. Any name of `SPLIT_ALIASES` counts (`validation/` is
    val), case-insensitively.

    Raises:
        SourceConflict: split folders beside class folders (a `test/` among `cat/ dog/` would
            become a class), two folders for one split, or val/test folders without a train folder.

    Example:
    >>> split_folders(Path("photos"))  # doctest: +SKIP
    {'train': PosixPath('photos/train'), 'val': PosixPath('photos/validation')}
    """
    found: dict[str, list[str]] = {}
    others: list[str] = []
    for name in list_class_folders(root):
        split = split_of_name(name)
        if split is None:
            others.append(name)
        else:
            found.setdefault(split, []).append(name)
    if not found:
        return {}
    named = [f"{n}/" for names in found.values() for n in names]
    if others:
        shown = ", ".join(f"{n}/" for n in others[:MAX_LISTED]) + (" ..." if len(others) > MAX_LISTED else "")
        raise SourceConflict(
            "split_layout", str(root),
            f"split folder(s) {', '.join(named)} sit beside {plural(len(others), 'other folder')} ({shown}); "
            "a folder holds either class folders or split folders",
            "move the class folders into train/ (val/ and test/ hold the same class folders), or "
            "rename a class folder that is named like a split", paths=[str(root / n) for n in named])
    for split, names in found.items():
        if len(names) > 1:
            raise SourceConflict("split_layout", str(root), f"{', '.join(n + '/' for n in names)} all name the "
                                 f"{split} split", "keep one of them (merge or rename the others)",
                                 paths=[str(root / n) for n in names])
    if "train" not in found:
        raise SourceConflict("split_layout", str(root), f"split folder(s) {', '.join(named)} but no train/ folder",
                             "add train/ with one subfolder per class (split folders: "
                             f"{aliases_text()})", paths=[str(root / n) for n in named])
    return {s: root / found[s][0] for s in SPLIT_NAMES if s in found}


# -- files listed twice ----------------------------------------------------------------------------


def _finding(kind: str, message: str, paths: Sequence[str], count: int) -> dict[str, Any]:
    return {"kind": kind, "message": message, "count": int(count), "paths": list(paths)}


def check_manifest_rows(manifest: Path, rows: Sequence[tuple[str, str, str, tuple[str, ...]]]
                        ) -> tuple[list[int], list[dict[str, Any]]]:
    """Rows that name one file twice: refuse conflicts and leaks, drop exact repeats.

    Files are compared by their real path (links resolved), labels as sets.

    Args:
        manifest: the CSV (for messages).
        rows: `(where, split, file, labels)` per row, `where` as `manifest.csv:LINE`.

    Returns:
        The indices of the rows to keep (the first of each repeat, in order), and the findings
        (`{"kind": "repeated_rows", "message", "count", "paths"}`) to warn about.

    Raises:
        SourceConflict: `label_conflict` (one file with two labels) or `leak` (one file in two
            splits), naming the count and the first files.
    """
    first: dict[str, int] = {}
    groups: dict[str, list[int]] = {}
    for index, (_, _, file, _) in enumerate(rows):
        key = os.path.realpath(file)
        first.setdefault(key, index)
        groups.setdefault(key, []).append(index)
    repeated = {k: g for k, g in groups.items() if len(g) > 1}
    conflicts = [g for g in repeated.values() if len({frozenset(rows[i][3]) for i in g}) > 1]
    if conflicts:
        shown = "; ".join(f"{rows[g[0]][2]} as " + " and ".join(
            f"{' '.join(rows[i][3]) or '(none)'} ({rows[i][0]})" for i in g[:2]) for g in conflicts[:MAX_LISTED])
        raise SourceConflict("label_conflict", str(manifest),
                             f"{plural(len(conflicts), 'file')} listed with different labels: {shown}",
                             "list each image once with its one label (a multi-label manifest has a `labels` "
                             "column: all of an image's labels in one cell, separated by spaces)",
                             paths=[rows[g[0]][2] for g in conflicts])
    leaks = [g for g in repeated.values() if len({rows[i][1] for i in g}) > 1]
    if leaks:
        shown = "; ".join(f"{rows[g[0]][2]} in " + " and ".join(
            f"{rows[i][1]} ({rows[i][0]})" for i in g[:2]) for g in leaks[:MAX_LISTED])
        raise SourceConflict("leak", str(manifest),
                             f"{plural(len(leaks), 'file')} listed in more than one split (a leak: the model would be "
                             f"scored on images it trained on): {shown}",
                             "list each image in one split only", paths=[rows[g[0]][2] for g in leaks])
    keep = [i for i, (_, _, file, _) in enumerate(rows) if first[os.path.realpath(file)] == i]
    findings = []
    if repeated:
        extra = len(rows) - len(keep)
        where = [rows[g[1]][0] for g in list(repeated.values())[:MAX_LISTED]]
        findings.append(_finding("repeated_rows", f"{manifest}: {plural(extra, 'repeated row')} (the same file, label and "
                                 f"split) dropped, e.g. {', '.join(where)}",
                                 [rows[g[0]][2] for g in repeated.values()], extra))
    return keep, findings


def same_file_findings(listed: dict[str, dict[str, list[str]]]) -> list[dict[str, Any]]:
    """Warnings for a folder source that reaches one file twice (links): in two classes, or two splits.

    Args:
        listed: `{split: {class: [file, ...]}}` as the folder was read.

    Example:
    >>> same_file_findings({"train": {"a": ["x.png"], "b": ["y.png"]}})
    []
    """
    seen: dict[str, list[tuple[str, str, str]]] = {}
    folders: dict[str, str] = {}  # realpath per folder: one lstat per file, not one per path component
    for split, per_class in listed.items():
        for name, files in per_class.items():
            for file in files:
                head, tail = os.path.split(file)
                if head not in folders:
                    folders[head] = os.path.realpath(head)
                real = os.path.realpath(file) if os.path.islink(file) else os.path.join(folders[head], tail)
                seen.setdefault(real, []).append((split, name, file))
    findings = []
    for kind, index, what in (("same_file_in_two_classes", 1, "class folders"),
                              ("same_file_in_two_splits", 0, "splits")):
        twice = [places for places in seen.values() if len({p[index] for p in places}) > 1]
        if twice:
            shown = "; ".join(" and ".join(p[2] for p in places[:2]) for places in twice[:MAX_LISTED])
            findings.append(_finding(kind, f"{plural(len(twice), 'file')} reached from two {what} (links to one file): "
                                     f"{shown}", [places[0][2] for places in twice], len(twice)))
    return findings


# -- the verdict -------------------------------------------------------------------------------------


@dataclass
class Verdict:
    """What `tfft train` refuses (`errors`, first one raised) and warns about (`warnings`)."""

    errors: list[UserError] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def raise_first(self) -> None:
        """Raise the first error, if any."""
        if self.errors:
            raise self.errors[0]


def verdict(splits: Any) -> Verdict:
    """The rules `tfft train` applies to listed data (`tfft data check` applies the same ones).

    Errors: fewer than 2 classes (1 label for multi-label data), no training images. Warnings:
    classes with no image in the val (or test) split, usually too few images for the split's
    fraction to give them one (a class of 1 or 2 images gets no val image at `val_split: 0.2`).

    Args:
        splits: a `tfft.data.DataSplits`.

    Example:
    >>> from tfft.config import DataConfig
    >>> from tfft.data import load_splits
    >>> v = verdict(load_splits(DataConfig(source="builtin:shapes", builtin_per_class=10), seed=0))
    >>> v.errors, v.warnings
    ([], [])
    """
    out = Verdict()
    names = list(splits.class_names)
    if len(names) < (1 if splits.multi_label else 2):
        out.errors.append(DataError("data.source", f"found {plural(len(names), 'class')} in {splits.source}",
                                    "a classifier needs at least 2 class folders"))
    train = splits.splits.get("train")
    if train is None or len(train) == 0:
        out.errors.append(DataError("data.source", "no training images", "check the folder and data.val_split"))
    if splits.kind == "tfds" or out.errors:  # a tfds split is counted only by reading it whole
        return out
    counts = {split: splits.counts(split) for split in splits.splits}
    for split in ("val", "test"):
        if split not in counts:
            continue
        missing = [c for c in names if counts[split][c] == 0]
        if missing:
            total = {c: sum(per[c] for per in counts.values()) for c in missing}
            shown = ", ".join(f"{c} ({total[c]} image{'s' if total[c] != 1 else ''})" for c in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            out.warnings.append({
                "kind": f"no_{split}_images", "count": len(missing), "classes": missing,
                "message": f"{plural(len(missing), 'class')} {'has' if len(missing) == 1 else 'have'} no {split} image: {shown}{more}; their {split} "
                           "scores are missing (add images to them)"})
    return out
