"""Stanford Cars (196 car models) from the devkit annotations, no download.

Layout (torchvision's ``StanfordCars`` uses the same one)::

    stanford_cars/
      devkit/cars_meta.mat              class_names (196)
      devkit/cars_train_annos.mat       annotations: bbox_x1, bbox_y1, bbox_x2, bbox_y2, class, fname
      cars_test_annos_withlabels.mat    the same fields for the test images (here or in devkit/)
      cars_train/<fname>, cars_test/<fname>

The devkit boxes are *inclusive, 1-based* pixel indices: pixel columns ``bbox_x1 .. bbox_x2``.
In 0-based pixel-edge XYXY that is ``x0 = bbox_x1 - 1, x1 = bbox_x2`` (same for y); classes
1..196 become labels 0..195.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy.io import loadmat
from torch.utils.data import Dataset

from dgdm_lib.data.errors import AnnotationError, DatasetLayoutError
from dgdm_lib.data.files import check_box, check_files_exist, image_target, load_image, resolve_root

FIELDS = ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")
EXPECTED = ("devkit/cars_meta.mat", "devkit/cars_train_annos.mat", "cars_train/",
            "cars_test_annos_withlabels.mat (here or in devkit/)", "cars_test/")
OBTAIN = ("The images and devkit were published at https://ai.stanford.edu/~jkrause/cars/car_dataset.html; "
          "that page is often offline, so use a mirror (e.g. the Kaggle copy of Stanford Cars with "
          "cars_test_annos_withlabels.mat) and arrange it as listed.")
HINT = "Pass that folder as root=..., or set DGDM_DATA to the folder that holds stanford_cars/."


def _load_mat(root: Path, path: Path, key: str) -> np.ndarray:
    if not path.exists():
        missing = [path.relative_to(root).as_posix()]
        raise DatasetLayoutError("Stanford Cars", root, list(EXPECTED), OBTAIN, missing=missing, hint=HINT)
    try:
        content = loadmat(path, squeeze_me=True)
    except Exception as error:  # scipy raises several types for a damaged .mat file
        raise AnnotationError(path, None, f"cannot read this .mat file ({error.__class__.__name__}: {error})") from None
    if key not in content:
        found = sorted(k for k in content if not k.startswith("__"))
        raise AnnotationError(path, None, f"expected a variable {key!r}, found {found}")
    return np.atleast_1d(content[key])


class StanfordCars(Dataset):
    """Stanford Cars with one box per image, read from the devkit ``.mat`` annotations.

    Items ``(image, target)`` as ``CUB200``; errors name the ``.mat`` file and the entry number
    (1-based) of a bad annotation. ``root`` defaults to ``data_dir()/stanford_cars``.
    """

    def __init__(self, root: Path | str | None = None, split: str = "train", transform: Callable | None = None):
        if split not in ("train", "test"):
            raise ValueError(f"StanfordCars split must be 'train' or 'test', got {split!r}")
        self.root = resolve_root(root, "stanford_cars", "devkit")
        if not self.root.is_dir():
            raise DatasetLayoutError("Stanford Cars", self.root, list(EXPECTED), OBTAIN, hint=HINT)
        self.split, self.transform = split, transform
        self.image_folder = self.root / f"cars_{split}"
        if not self.image_folder.is_dir():
            raise DatasetLayoutError("Stanford Cars", self.root, list(EXPECTED), OBTAIN, missing=[f"cars_{split}/"],
                                     hint=HINT)
        names = _load_mat(self.root, self.root / "devkit" / "cars_meta.mat", "class_names")
        self.classes = [str(name) for name in names]
        self.annotation_file = self._annotation_file()
        self.samples = self._read_annotations()

    def _annotation_file(self) -> Path:
        if self.split == "train":
            return self.root / "devkit" / "cars_train_annos.mat"
        name = "cars_test_annos_withlabels.mat"
        for candidate in (self.root / name, self.root / "devkit" / name):
            if candidate.exists():
                return candidate
        return self.root / name

    def _read_annotations(self) -> list[dict[str, Any]]:
        file = self.annotation_file
        annotations = _load_mat(self.root, file, "annotations")
        names = annotations.dtype.names or ()
        missing = [f for f in FIELDS if f not in names]
        if missing:
            raise AnnotationError(file, None, f"annotations lack the fields {', '.join(missing)} "
                                  f"(expected {', '.join(FIELDS)}); "
                                  "the test split needs cars_test_annos_withlabels.mat, not cars_test_annos.mat")
        samples = []
        for entry, record in enumerate(annotations, start=1):
            fname = str(record["fname"])
            try:
                x1, y1, x2, y2, label = (int(record[f]) for f in FIELDS[:5])
            except (TypeError, ValueError):
                raise AnnotationError(file, entry, f"expected integer box corners and class, found "
                                      f"{[record[f] for f in FIELDS[:5]]}", fname) from None
            if not 1 <= label <= len(self.classes):
                raise AnnotationError(file, entry, f"class {label} is outside 1..{len(self.classes)} (cars_meta.mat)",
                                      fname)
            box = check_box([x1 - 1, y1 - 1, x2, y2], None, None, file, entry, fname)
            samples.append({"fname": fname, "label": label - 1, "box": box, "entry": entry})
        return samples

    def check_files(self) -> None:
        """``ImageReadError`` if an image of this split is not on disk (nothing is decoded)."""
        check_files_exist([(s["fname"], self.image_folder / s["fname"]) for s in self.samples])

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, dict[str, Any]]:
        sample = self.samples[index]
        image = load_image(self.image_folder / sample["fname"], sample["fname"])
        target = image_target(image, [sample["box"]], sample["label"], sample["fname"], self.annotation_file,
                              [sample["entry"]])
        if self.transform is not None:
            image, target = self.transform(image, target)
        return image, target

    def __repr__(self) -> str:
        return (f"StanfordCars(root={str(self.root)!r}, split={self.split!r}, images={len(self)}, "
                f"classes={len(self.classes)})")
