"""Reading real datasets from disk: roots, annotation lines, images and box checks.

Shared by the CUB, wsolevaluation-metadata and Stanford Cars readers so that every one of them
reports problems the same way: the file and line of a bad annotation, the id of a bad image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision import tv_tensors

from dgdm_lib.config import data_dir
from dgdm_lib.data.errors import AnnotationError, DatasetLayoutError, ImageReadError

#: Boxes may overshoot their image by this many pixels (rounding in the annotations) before it is an error.
BOX_TOLERANCE = 1.0
#: Single-channel integer modes wider than 8 bits: Pillow's 16-bit greyscale (PNG, TIFF) and 32-bit ints.
WIDE_INTEGER_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def resolve_root(root: Path | str | None, default_name: str, marker: str) -> Path:
    """``root`` if given, else ``data_dir() / default_name``; a parent holding ``default_name/marker`` also works."""
    path = Path(root).expanduser() if root is not None else data_dir() / default_name
    if not (path / marker).exists() and (path / default_name / marker).exists():
        return path / default_name
    return path


def require(dataset: str, root: Path, expected: Sequence[str], obtain: str, hint: str | None = None) -> None:
    """Raise ``DatasetLayoutError`` unless ``root`` exists and holds every path in ``expected``."""
    if not root.is_dir():
        raise DatasetLayoutError(dataset, root, list(expected), obtain, hint=hint)
    missing = [name for name in expected if not (root / name.rstrip("/")).exists()]
    if missing:
        raise DatasetLayoutError(dataset, root, list(expected), obtain, missing=missing, hint=hint)


def read_rows(path: Path, separator: str | None, fields: int, at_least: bool = False) -> list[tuple[int, list[str]]]:
    """Non-empty lines of a text annotation file as ``(line number, fields)``.

    ``separator`` None splits on whitespace. A line with the wrong number of fields raises
    ``AnnotationError`` naming the file and line.
    """
    rows = []
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark (Windows editors) is dropped
    except UnicodeDecodeError as error:
        body = error.object  # the bytes after a byte-order mark, if any
        line = bytes(body[: error.start]).count(b"\n") + 1
        raise AnnotationError(path, line, f"not UTF-8 text (byte {body[error.start]:#04x}); save the file as "
                              "UTF-8") from None
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")  # as open() in text mode
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line:
            continue
        parts = [p.strip() for p in line.split(separator)] if separator else line.split()
        wrong = len(parts) < fields if at_least else len(parts) != fields
        if wrong:
            between = "whitespace" if separator is None else repr(separator)
            raise AnnotationError(path, number, f"expected {fields} fields separated by {between}, "
                                  f"found {len(parts)}: {line!r}")
        rows.append((number, parts))
    return rows


def first_lines(path: Path, rows: list[tuple[int, list[str]]], what: str = "image id",
                conflict_only: bool = False) -> dict[str, tuple[int, list[str]]]:
    """``key (first field) -> (line, fields)``; a key seen twice raises ``AnnotationError`` naming
    the file, the second line and the first (with ``conflict_only``, only when the other fields differ)."""
    seen: dict[str, tuple[int, list[str]]] = {}
    for line, fields in rows:
        key = fields[0]
        if key in seen:
            first, before = seen[key]
            if conflict_only and before[1:] == fields[1:]:
                continue
            detail = f" with other values ({' '.join(before[1:])} there, {' '.join(fields[1:])} here)" if conflict_only else ""
            raise AnnotationError(path, line, f"{what} {key} appears again{detail}: first on line {first}; "
                                  "each must appear once", key if what == "image id" else None)
        seen[key] = (line, fields)
    return seen


def require_rows(path: Path, rows: list[tuple[int, list[str]]], what: str) -> list[tuple[int, list[str]]]:
    """``rows``, or an ``AnnotationError`` saying that ``path`` is empty."""
    if not rows:
        raise AnnotationError(path, None, f"the file is empty: it lists no {what}")
    return rows


def check_files_exist(entries: Sequence[tuple[str, Path]]) -> None:
    """Raise ``ImageReadError`` for the first ``(image id, path)`` whose file is not there (a cheap
    ``os.path`` check, nothing decoded), saying how many more are missing."""
    import os

    missing = [(image_id, path) for image_id, path in entries if not os.path.isfile(path)]
    if missing:
        image_id, path = missing[0]
        more = f" ({len(missing) - 1} more of the {len(entries)} listed are missing too)" if len(missing) > 1 else ""
        raise ImageReadError(image_id, path, "file not found" + more)


def parse_number(
    path: Path, line: int, text: str, kind: Callable[[str], float] = float, image_id: str | None = None
) -> float:
    """``kind(text)`` or an ``AnnotationError`` naming the file and line."""
    try:
        return kind(text)
    except ValueError:
        raise AnnotationError(path, line, f"expected a number, found {text!r}", image_id) from None


def check_box(
    box: Sequence[float], width: int | None, height: int | None, path: Path, line: int | None, image_id: str
) -> list[float]:
    """A pixel-edge XYXY box, checked for positive size and (when the size is known) to lie in the image.

    Overshoot up to ``BOX_TOLERANCE`` pixels is clamped; more raises ``AnnotationError`` with the id.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    if not (x1 > x0 and y1 > y0):
        raise AnnotationError(path, line, f"box {[x0, y0, x1, y1]} has no area (need x1 > x0 and y1 > y0)", image_id)
    if width is None or height is None:
        return [x0, y0, x1, y1]
    t = BOX_TOLERANCE
    if x0 < -t or y0 < -t or x1 > width + t or y1 > height + t:
        raise AnnotationError(path, line, f"box {[x0, y0, x1, y1]} lies outside its {width}x{height} image "
                              "(x in [0, width], y in [0, height])", image_id)
    return [max(x0, 0.0), max(y0, 0.0), min(x1, float(width)), min(y1, float(height))]


def load_image(path: Path, image_id: str) -> tv_tensors.Image:
    """RGB image (3, H, W) uint8; ``ImageReadError`` with the id if it cannot be read.

    A 16-bit greyscale image is scaled to 8 bits (``round(v / 257)``); a 32-bit integer one is too
    when its values fit in 16 bits, and refused otherwise.
    """
    try:
        with Image.open(path) as image:
            array = _rgb_array(image, path, image_id)
    except ImageReadError:
        raise
    except FileNotFoundError:
        raise ImageReadError(image_id, path, "file not found") from None
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise ImageReadError(image_id, path, f"{error.__class__.__name__}: {error}") from None
    return tv_tensors.Image(torch.from_numpy(array.copy()).permute(2, 0, 1))


def _rgb_array(image: Image.Image, path: Path, image_id: str) -> np.ndarray:
    """(H, W, 3) uint8. Pillow's ``convert("RGB")`` clips wide integer modes at 255 (a 16-bit PNG
    turns almost white), so those are scaled here."""
    if image.mode not in WIDE_INTEGER_MODES:
        return np.asarray(image.convert("RGB"))
    values = np.asarray(image).astype(np.int64)
    low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
    if low < 0 or high > 65535:
        raise ImageReadError(image_id, path, f"its {image.mode} pixel values span {low}..{high}, beyond 16 bits; "
                             "convert it to an 8-bit or 16-bit image")
    grey = ((values * 255 + 32767) // 65535).astype(np.uint8)  # round(v / 257): 65535 -> 255
    return np.repeat(grey[..., None], 3, axis=-1)


def image_target(image: tv_tensors.Image, boxes: Sequence[Sequence[float]], label: int, image_id: str,
                 source: Path, lines: Sequence[int | None], error_id: str | None = None) -> dict:
    """Target dict with boxes checked against the loaded image and wrapped as ``BoundingBoxes``.

    ``source`` and ``lines`` say where each box was read, ``error_id`` how errors name the image.
    The annotation as read (``source_boxes``, float64 tuples) and the image size (``source_size``,
    (h, w)) travel along untouched by the transforms, for the reference evaluator's box conversion
    (``dgdm_lib.localization.reference_boxes``).
    """
    height, width = image.shape[-2:]
    checked = [check_box(b, width, height, source, line, error_id or image_id) for b, line in zip(boxes, lines)]
    data = torch.tensor(checked, dtype=torch.float32).reshape(-1, 4)
    return {
        "label": int(label),
        "boxes": tv_tensors.BoundingBoxes(data, format="XYXY", canvas_size=(height, width)),
        "image_id": image_id,
        # Tuples, not arrays or tensors: torchvision's v2 transforms would treat those as images.
        "source_boxes": tuple(tuple(float(v) for v in box) for box in checked),
        "source_size": (int(height), int(width)),
    }
