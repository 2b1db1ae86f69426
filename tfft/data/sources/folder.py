"""`data.source: path/to/folder`: class subfolders, or train/ (val/, test/) split folders of them.

The folder may be local or on any file system TensorFlow knows (`gs://bucket/photos`, `ram://photos`).
"""

from __future__ import annotations

import os

from tfft.config import DataConfig
from tfft.data import decode as _decode
from tfft.data import rules as _rules
from tfft.data.rules import list_class_folders, split_folders
from tfft.data import fs as _fs
from tfft.data.sources.base import SOURCES, DataSource, DataSplits
from tfft.data.sources.files import finish_files, list_images
from tfft.data.sources.split import stratified, carve_missing
from tfft.errors import DataError, UserError


def _hint_missing(source: str) -> str:
    return ("give a folder of class subfolders (e.g. photos/cat/*.jpg, photos/dog/*.jpg), "
            "csv:manifest.csv, tfrecord:DIR, tfds:NAME or builtin:shapes; relative paths are resolved "
            f"from the current directory ({os.getcwd()})")


@SOURCES.register("folder")
class FolderSource(DataSource):
    """A folder of class subfolders (local, `gs://`, `ram://`, ...).

    Example:
    >>> FolderSource("photos/").has_files
    True
    """

    name = "folder"

    def check(self) -> None:
        root = _fs.path(self.location)
        if not root.exists():
            raise UserError("data.source", f"folder not found: {self.spec!r}", _hint_missing(self.spec))
        if not root.is_dir():
            raise UserError("data.source", f"expected a folder of class subfolders, got the file {self.spec!r}",
                            "for a manifest write csv:" + self.spec if self.spec.endswith(".csv")
                            else _hint_missing(self.spec))

    def load(self, data_cfg: DataConfig, seed: int, task: str = "auto") -> DataSplits:
        return _load_folder(self, data_cfg, seed)


def _load_folder(folder: FolderSource, data_cfg: DataConfig, seed: int) -> DataSplits:
    folder.check()
    source = folder.spec
    root = _fs.path(folder.location)
    folders = split_folders(root)
    per_split: dict[str, dict[str, list[str]]]
    if folders:
        train_dir = folders["train"]
        class_names = list_class_folders(train_dir)
        if not class_names:
            raise DataError(str(train_dir), "no class subfolders",
                            f"put each class's images in its own subfolder, e.g. {train_dir.name}/cat/, "
                            f"{train_dir.name}/dog/")
        listed: dict[str, dict[str, list[str]]] = {}
        for split_name, folder in folders.items():
            names = list_class_folders(folder)
            if split_name != "train" and names != class_names:
                raise UserError(
                    str(folder), f"classes differ from {train_dir.name}/: {folder.name}/ has {names}, "
                    f"{train_dir.name}/ has {class_names}",
                    f"give {folder.name}/ the same class subfolders as {train_dir.name}/ (an empty folder is "
                    "fine for val/test only if you remove it)")
            listed[split_name] = {c: list_images(folder / c) for c in class_names}
        for c in class_names:
            if not listed["train"][c]:
                raise DataError(str(train_dir / c), "no images",
                                f"add images ({', '.join(_decode.IMAGE_EXTENSIONS)}) or remove the folder")
        findings = _rules.same_file_findings(listed)
        per_split = carve_missing(listed, data_cfg.val_split, data_cfg.test_split, seed)
    else:
        class_names = list_class_folders(root)
        if not class_names:
            loose = list_images(root)
            raise DataError(str(root), "no class subfolders" + (f" ({len(loose)} loose images)" if loose else ""),
                            "put each class's images in its own subfolder, e.g. "
                            f"{root}/cat/*.jpg and {root}/dog/*.jpg")
        per_class = {c: list_images(root / c) for c in class_names}
        for c, files in per_class.items():
            if not files:
                raise DataError(str(root / c), "no images",
                                f"add images ({', '.join(_decode.IMAGE_EXTENSIONS)}) or remove the folder")
        findings = _rules.same_file_findings({"train": per_class})
        per_split = stratified(per_class, data_cfg.val_split, data_cfg.test_split, seed)
        if data_cfg.test_split <= 0:
            per_split.pop("test")
        if data_cfg.val_split <= 0:
            per_split.pop("val")
    result = finish_files(source, class_names, per_split, data_cfg, seed, [], where_root=root,
                           train_dir=folders.get("train"))
    result.findings = findings
    return result

