"""CUB-200-2011 (Caltech-UCSD Birds) from its native layout, no download.

Layout (as extracted from CUB_200_2011.tgz)::

    CUB_200_2011/
      images.txt              <image id> <relative path>
      image_class_labels.txt  <image id> <class id, 1-based>
      train_test_split.txt    <image id> <1 = train, 0 = test>
      bounding_boxes.txt      <image id> <x> <y> <width> <height>   (pixels, floats)
      classes.txt             <class id> <class name>
      images/<relative path>

Boxes ``x, y, w, h`` become pixel-edge XYXY ``x, y, x + w, y + h`` (as wsolevaluation's CUB
metadata does); labels become 0-based in the order of the class ids.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from dgdm_lib.data.errors import AnnotationError
from dgdm_lib.data.files import check_box, image_target, load_image, parse_number, read_rows, require, resolve_root

FILES = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "bounding_boxes.txt", "classes.txt", "images/")
OBTAIN = ("Download CUB_200_2011.tgz from https://www.vision.caltech.edu/datasets/cub_200_2011/ "
          "(or https://data.caltech.edu/records/65de6-vp158) and extract it so this folder holds those files.")
HINT = "Pass that folder as root=..., or set DGDM_DATA to the folder that holds CUB_200_2011/."


class CUB200(Dataset):
    """CUB-200-2011 birds: 200 classes, one box per image (SPEC section 7).

    Items ``(image, target)``: image a ``tv_tensors.Image`` (3, H, W) uint8 before ``transform``;
    target ``{"label": 0-based int, "boxes": BoundingBoxes (k, 4) XYXY pixel-edge, "image_id": relative path}``,
    boxes in the frame of the returned image once ``transform(image, target)`` has run
    (e.g. ``standard_transforms(train=True)``). ``root`` defaults to ``data_dir()/CUB_200_2011``.
    """

    def __init__(self, root: Path | str | None = None, split: str = "train", transform: Callable | None = None):
        if split not in ("train", "test"):
            raise ValueError(f"CUB200 split must be 'train' or 'test', got {split!r}")
        self.root = resolve_root(root, "CUB_200_2011", "images.txt")
        require("CUB-200-2011", self.root, FILES, OBTAIN, HINT)
        self.split, self.transform = split, transform
        self.classes, class_index = self._read_classes()
        self.class_to_idx = {name: k for k, name in enumerate(self.classes)}
        paths = {image_id: path for _, (image_id, path) in read_rows(self.root / "images.txt", None, 2)}
        labels = self._per_image("image_class_labels.txt", paths)
        is_train = self._per_image("train_test_split.txt", paths)
        boxes = self._read_boxes(paths)
        self.samples: list[dict[str, Any]] = []
        for image_id, path in paths.items():
            line, text = labels[image_id]
            if text not in class_index:
                raise AnnotationError(self.root / "image_class_labels.txt", line,
                                      f"class id {text} is not in classes.txt", image_id)
            if (is_train[image_id][1] == "1") != (split == "train"):
                continue
            if image_id not in boxes:
                raise AnnotationError(self.root / "bounding_boxes.txt", None, "no box for this image", image_id)
            self.samples.append({"id": image_id, "path": path, "label": class_index[text], "boxes": boxes[image_id]})

    def _read_classes(self) -> tuple[list[str], dict[str, int]]:
        rows = read_rows(self.root / "classes.txt", None, 2)
        for line, (class_id, _) in rows:
            parse_number(self.root / "classes.txt", line, class_id, int)
        ordered = sorted(rows, key=lambda row: int(row[1][0]))
        return [name for _, (_, name) in ordered], {class_id: k for k, (_, (class_id, _)) in enumerate(ordered)}

    def _per_image(self, name: str, paths: dict[str, str]) -> dict[str, tuple[int, str]]:
        """``image id -> (line, value)`` for a two-column file; every image must appear, and only known ones."""
        values = {}
        for line, (image_id, value) in read_rows(self.root / name, None, 2):
            if image_id not in paths:
                raise AnnotationError(self.root / name, line, "unknown image id (not in images.txt)", image_id)
            values[image_id] = (line, value)
        missing = [image_id for image_id in paths if image_id not in values]
        if missing:
            raise AnnotationError(self.root / name, None, f"no line for image ids {', '.join(missing[:5])}"
                                  + (f" and {len(missing) - 5} more" if len(missing) > 5 else ""))
        return values

    def _read_boxes(self, paths: dict[str, str]) -> dict[str, list[tuple[int, list[float]]]]:
        file = self.root / "bounding_boxes.txt"
        boxes: dict[str, list[tuple[int, list[float]]]] = {}
        for line, (image_id, *xywh) in read_rows(file, None, 5):
            if image_id not in paths:
                raise AnnotationError(file, line, "unknown image id (not in images.txt)", image_id)
            x, y, w, h = (parse_number(file, line, v, float, image_id) for v in xywh)
            box = check_box([x, y, x + w, y + h], None, None, file, line, image_id)
            boxes.setdefault(image_id, []).append((line, box))
        return boxes

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, dict[str, Any]]:
        sample = self.samples[index]
        name = f"{sample['id']} ({sample['path']})"
        image = load_image(self.root / "images" / sample["path"], name)
        lines = [line for line, _ in sample["boxes"]]
        target = image_target(image, [box for _, box in sample["boxes"]], sample["label"], sample["path"],
                              self.root / "bounding_boxes.txt", lines, error_id=name)
        if self.transform is not None:
            image, target = self.transform(image, target)
        return image, target

    def __repr__(self) -> str:
        return f"CUB200(root={str(self.root)!r}, split={self.split!r}, images={len(self)}, classes={len(self.classes)})"
