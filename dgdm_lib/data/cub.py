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
metadata does); labels become 0-based in the order of the class ids kept.

CUB has no validation split. As in the "train-fullsup" protocol of "Evaluating WSOL Methods
Right", one is carved from the official training images: ``val_per_class`` images of every class,
chosen by a hash of (``val_seed``, image id), so the same images are held out whichever classes a
run keeps. ``split="train"`` is the rest of the training images, ``"trainval"`` all of them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from dgdm_lib.data.errors import AnnotationError
from dgdm_lib.data.files import (
    check_box,
    check_files_exist,
    first_lines,
    image_target,
    load_image,
    parse_number,
    read_rows,
    require,
    require_rows,
    resolve_root,
)

FILES = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "bounding_boxes.txt", "classes.txt", "images/")
OBTAIN = ("Download CUB_200_2011.tgz from https://www.vision.caltech.edu/datasets/cub_200_2011/ "
          "(or https://data.caltech.edu/records/65de6-vp158) and extract it so this folder holds those files.")
HINT = ("Pass that folder as root=..., set DGDM_CUB_ROOT to it, or set DGDM_DATA to the folder that holds "
        "CUB_200_2011/. `python -m dgdm_lib data cub` downloads it (1.1 GB).")


class CUB200(Dataset):
    """CUB-200-2011 birds: 200 classes, one box per image (data/README.md).

    Items ``(image, target)``: image a ``tv_tensors.Image`` (3, H, W) uint8 before ``transform``;
    target ``{"label": 0-based int, "boxes": BoundingBoxes (k, 4) XYXY pixel-edge, "image_id": relative path}``,
    boxes in the frame of the returned image once ``transform(image, target)`` has run
    (e.g. ``standard_transforms(train=True)``). ``root`` defaults to ``DGDM_CUB_ROOT``, else
    ``data_dir()/CUB_200_2011``.

    Args:
        split: ``"train"`` (official train minus the carved validation images), ``"val"`` (the
            carved ones), ``"trainval"`` (all official train images) or ``"test"``.
        classes: keep only these classes: an int ``n`` (the first n classes of ``classes.txt``),
            or a sequence of CUB class ids (``2`` or ``"2"``) or folder names
            (``"002.Laysan_Albatross"``). Labels are contiguous over the classes kept.
        val_per_class: training images of each class held out as the validation split.
        val_seed: which ones (a fixed seed: the same every run).
    """

    def __init__(self, root: Path | str | None = None, split: str = "train", transform: Callable | None = None,
                 classes: int | Sequence[int | str] | None = None, val_per_class: int = 5, val_seed: int = 0):
        if split not in SPLITS:
            raise ValueError(f"CUB200 split must be one of {', '.join(SPLITS)}, got {split!r}")
        if val_per_class < 0:
            raise ValueError(f"val_per_class must be >= 0, got {val_per_class}")
        self.root = resolve_root(_default_root(root), "CUB_200_2011", "images.txt")
        require("CUB-200-2011", self.root, FILES, OBTAIN, HINT)
        self.split, self.transform = split, transform
        self.classes, class_index = self._read_classes()
        known = set(class_index)
        if classes is not None:
            self.classes, class_index = self._keep_classes(classes, class_index)
        self.class_ids = sorted(class_index, key=class_index.__getitem__)
        self.class_to_idx = {name: k for k, name in enumerate(self.classes)}
        images = require_rows(self.root / "images.txt", read_rows(self.root / "images.txt", None, 2), "images")
        paths = {image_id: path for image_id, (_, (_, path)) in first_lines(self.root / "images.txt", images).items()}
        labels = self._per_image("image_class_labels.txt", paths)
        is_train = self._per_image("train_test_split.txt", paths)
        for image_id, (line, value) in is_train.items():
            if value not in ("0", "1"):
                raise AnnotationError(self.root / "train_test_split.txt", line,
                                      f"the split must be 1 (train) or 0 (test), found {value!r}", image_id)
        wanted = "0" if split == "test" else "1"
        if not any(value == wanted for _, value in is_train.values()):
            raise AnnotationError(self.root / "train_test_split.txt", None,
                                  f"no {'test' if split == 'test' else 'training'} images: every image is marked "
                                  f"{'1 (train)' if split == 'test' else '0 (test)'}")
        boxes = self._read_boxes(paths)
        candidates: list[dict[str, Any]] = []
        for image_id, path in paths.items():
            line, text = labels[image_id]
            if text not in known:
                raise AnnotationError(self.root / "image_class_labels.txt", line,
                                      f"class id {text} is not in classes.txt", image_id)
            if text not in class_index or (is_train[image_id][1] == "1") != (split != "test"):
                continue
            if image_id not in boxes:
                raise AnnotationError(self.root / "bounding_boxes.txt", None, "no box for this image", image_id)
            candidates.append({"id": image_id, "path": path, "label": class_index[text], "boxes": boxes[image_id]})
        self.samples = self._split_of(candidates, val_per_class, val_seed)

    def _split_of(self, samples: list[dict[str, Any]], val_per_class: int, val_seed: int) -> list[dict[str, Any]]:
        """The samples that belong to ``self.split``, in ``images.txt`` order."""
        if self.split in ("test", "trainval"):
            return samples
        by_class: dict[int, list[str]] = {}
        for sample in samples:
            by_class.setdefault(sample["label"], []).append(sample["id"])
        held = {i for ids in by_class.values() for i in sorted(ids, key=lambda i: _draw(val_seed, i))[:val_per_class]}
        return [s for s in samples if (s["id"] in held) == (self.split == "val")]

    def _keep_classes(self, classes: int | Sequence[int | str],
                      class_index: dict[str, int]) -> tuple[list[str], dict[str, int]]:
        ids = sorted(class_index, key=class_index.__getitem__)
        by_name = dict(zip(self.classes, ids))
        if isinstance(classes, int):
            if not 1 <= classes <= len(ids):
                raise ValueError(f"classes={classes}: {self.root / 'classes.txt'} lists {len(ids)} classes")
            wanted = ids[:classes]
        else:
            wanted = [by_name.get(str(c), str(c)) for c in classes]
            unknown = [str(c) for c, w in zip(classes, wanted) if w not in class_index]
            if unknown or not wanted or len(set(wanted)) != len(wanted):
                raise ValueError(
                    f"classes={list(classes)}: {', '.join(unknown) or 'an empty or repeated choice'} "
                    f"(not a class id or folder name of {self.root / 'classes.txt'}, which has ids "
                    f"{', '.join(ids[:6])}{' ...' if len(ids) > 6 else ''}): give distinct ids or names from that file"
                )
        wanted = sorted(wanted, key=class_index.__getitem__)
        names = [self.classes[class_index[c]] for c in wanted]
        return names, {c: k for k, c in enumerate(wanted)}

    def _read_classes(self) -> tuple[list[str], dict[str, int]]:
        rows = require_rows(self.root / "classes.txt", read_rows(self.root / "classes.txt", None, 2), "classes")
        for line, (class_id, _) in rows:
            parse_number(self.root / "classes.txt", line, class_id, int)
        first_lines(self.root / "classes.txt", rows, "class id")
        ordered = sorted(rows, key=lambda row: int(row[1][0]))
        return [name for _, (_, name) in ordered], {class_id: k for k, (_, (class_id, _)) in enumerate(ordered)}

    def _per_image(self, name: str, paths: dict[str, str]) -> dict[str, tuple[int, str]]:
        """``image id -> (line, value)`` for a two-column file; every image must appear, and only known ones."""
        values = {}
        rows = read_rows(self.root / name, None, 2)
        for line, (image_id, _) in rows:
            if image_id not in paths:
                raise AnnotationError(self.root / name, line, "unknown image id (not in images.txt)", image_id)
        for image_id, (line, (_, value)) in first_lines(self.root / name, rows, conflict_only=True).items():
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
            if image_id in boxes:
                raise AnnotationError(file, line, f"a second box for this image (first on line {boxes[image_id][0][0]}): "
                                      "CUB has exactly one box per image", image_id)
            boxes.setdefault(image_id, []).append((line, box))
        return boxes

    def check_files(self) -> None:
        """``ImageReadError`` if an image of this split is not on disk (nothing is decoded)."""
        check_files_exist([(f"{s['id']} ({s['path']})", self.root / "images" / s["path"]) for s in self.samples])

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


SPLITS = ("train", "val", "trainval", "test")


def _draw(seed: int, image_id: str) -> str:
    """A reproducible pseudo-random key of one image for the validation carve (same on every machine)."""
    return hashlib.sha256(f"{seed}:{image_id}".encode()).hexdigest()


def _default_root(root: Path | str | None) -> Path | str | None:
    """``root``, else ``DGDM_CUB_ROOT`` when set (else ``None``: the data folder's default)."""
    if root is not None:
        return root
    return os.environ.get("DGDM_CUB_ROOT") or None
