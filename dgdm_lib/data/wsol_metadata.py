"""Datasets in the metadata layout of "Evaluating WSOL Methods Right" (clovaai/wsolevaluation).

One folder per split (``metadata/<dataset>/<split>/``), comma-separated, paths relative to the
image root::

    image_ids.txt      <path>
    class_labels.txt   <path>,<label, 0-based>
    image_sizes.txt    <path>,<width>,<height>          (optional)
    localization.txt   <path>,<x0>,<y0>,<x1>,<y1>       (optional; one line per box, several per image)

Boxes are read as XYXY pixel-edge coordinates (for CUB they are ``x, y, x + w, y + h``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from dgdm_lib.config import data_dir
from dgdm_lib.data.errors import AnnotationError, DatasetLayoutError
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
)

REQUIRED = ("image_ids.txt", "class_labels.txt")
OBTAIN = ("The metadata folders come with https://github.com/clovaai/wsolevaluation (metadata/<dataset>/<split>/, "
          "image_sizes.txt and localization.txt are read when present); the images come from each dataset's own "
          "site (see that repository's README).")
HINT = ("Pass image_root=... and metadata_root=... (the <dataset> or <dataset>/<split> folder), or put them at "
        "DGDM_DATA/wsolevaluation/dataset/<dataset> and DGDM_DATA/wsolevaluation/metadata/<dataset>.")


def _metadata_folder(metadata_root: Path, split: str) -> Path:
    """``metadata_root/split`` when it exists, else ``metadata_root`` itself (already a split folder)."""
    return metadata_root / split if (metadata_root / split).is_dir() else metadata_root


class WSOLMetadataDataset(Dataset):
    """A split described by wsolevaluation metadata files (CUB, ImageNet, OpenImages boxes).

    Items ``(image, target)`` as ``CUB200``: ``{"label", "boxes" (k, 4) BoundingBoxes, "image_id" (the path)}``.
    Defaults: ``image_root = data_dir()/wsolevaluation/dataset/<dataset>``,
    ``metadata_root = data_dir()/wsolevaluation/metadata/<dataset>``.
    """

    def __init__(self, image_root: Path | str | None = None, metadata_root: Path | str | None = None,
                 split: str = "test", transform: Callable | None = None, dataset: str = "CUB"):
        base = data_dir() / "wsolevaluation"
        self.image_root = Path(image_root).expanduser() if image_root is not None else base / "dataset" / dataset
        metadata_root = Path(metadata_root).expanduser() if metadata_root is not None else base / "metadata" / dataset
        self.folder = _metadata_folder(metadata_root, split)
        require(f"wsolevaluation metadata ({split})", self.folder, REQUIRED, OBTAIN, HINT)
        if not self.image_root.is_dir():
            expected = ["the image files named in image_ids.txt"]
            raise DatasetLayoutError(f"{dataset} images", self.image_root, expected, OBTAIN, hint=HINT)
        self.split, self.transform = split, transform

        file = self.folder / "image_ids.txt"
        rows = require_rows(file, read_rows(file, None, 1), "images")
        self.image_ids = list(first_lines(file, rows))
        known = set(self.image_ids)
        self.labels = self._labels(known)
        self.sizes = self._sizes(known)
        self.boxes = self._boxes(known)
        self.num_classes = max(self.labels.values(), default=-1) + 1

    def _unknown(self, file: Path, line: int, image_id: str, known: set[str]) -> None:
        if image_id not in known:
            raise AnnotationError(file, line, "unknown image id (not in image_ids.txt)", image_id)

    def _labels(self, known: set[str]) -> dict[str, int]:
        file = self.folder / "class_labels.txt"
        labels = {}
        rows = read_rows(file, ",", 2)
        for line, (image_id, _) in rows:
            self._unknown(file, line, image_id, known)
        first_lines(file, rows, conflict_only=True)
        for line, (image_id, label) in rows:
            labels[image_id] = int(parse_number(file, line, label, int, image_id))
            if labels[image_id] < 0:
                raise AnnotationError(file, line, f"labels must be >= 0 (0-based), found {label}", image_id)
        for image_id in self.image_ids:
            if image_id not in labels:
                raise AnnotationError(file, None, "no class label for this image", image_id)
        return labels

    def _sizes(self, known: set[str]) -> dict[str, tuple[int, int, int]]:
        file = self.folder / "image_sizes.txt"
        sizes = {}
        if file.exists():
            rows = read_rows(file, ",", 3)
            first_lines(file, rows, conflict_only=True)
            for line, (image_id, width, height) in rows:
                self._unknown(file, line, image_id, known)
                sizes[image_id] = (int(parse_number(file, line, width, int, image_id)),
                                   int(parse_number(file, line, height, int, image_id)), line)
        return sizes

    def _boxes(self, known: set[str]) -> dict[str, list[tuple[int, list[float]]]]:
        file = self.folder / "localization.txt"
        boxes: dict[str, list[tuple[int, list[float]]]] = {}
        if file.exists():
            for line, (image_id, *coords) in read_rows(file, ",", 5):
                self._unknown(file, line, image_id, known)
                box = [parse_number(file, line, c, float, image_id) for c in coords]
                width, height, _ = self.sizes.get(image_id, (None, None, None))
                boxes.setdefault(image_id, []).append((line, check_box(box, width, height, file, line, image_id)))
        return boxes

    def check_files(self) -> None:
        """``ImageReadError`` if an image of this split is not on disk (nothing is decoded)."""
        check_files_exist([(image_id, self.image_root / image_id) for image_id in self.image_ids])

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> tuple[Any, dict[str, Any]]:
        image_id = self.image_ids[index]
        image = load_image(self.image_root / image_id, image_id)
        if image_id in self.sizes:
            width, height, line = self.sizes[image_id]
            if (height, width) != tuple(image.shape[-2:]):
                found = f"{image.shape[-1]}x{image.shape[-2]}"
                raise AnnotationError(self.folder / "image_sizes.txt", line, f"lists {width}x{height} but the file is "
                                      f"{found}: the metadata belongs to other images", image_id)
        entries = self.boxes.get(image_id, [])
        target = image_target(image, [box for _, box in entries], self.labels[image_id], image_id,
                              self.folder / "localization.txt", [line for line, _ in entries])
        if self.transform is not None:
            image, target = self.transform(image, target)
        return image, target

    def __repr__(self) -> str:
        return (f"WSOLMetadataDataset(image_root={str(self.image_root)!r}, metadata={str(self.folder)!r}, "
                f"images={len(self)}, classes={self.num_classes})")
