"""Errors a reader can act on: each names the path, the line or the image id involved."""

from __future__ import annotations

from pathlib import Path


class DatasetLayoutError(FileNotFoundError):
    """A dataset root or one of its files is missing.

    The message names the path looked at, the files expected there and where the data can be obtained.
    """

    def __init__(self, dataset: str, path: Path | str, expected: list[str], obtain: str,
                 missing: list[str] | None = None, hint: str | None = None):
        self.dataset = dataset
        self.path = Path(path)
        self.expected = list(expected)
        self.missing = list(missing) if missing is not None else None
        found = "not found" if missing is None else "is missing " + ", ".join(missing)
        hint = hint or f"Pass its folder as `root=...`, or set DGDM_DATA to the folder that holds {self.path.name}/."
        message = f"{dataset} {found} at {self.path}: expected {', '.join(expected)}. {obtain} {hint}"
        super().__init__(message)


class AnnotationError(ValueError):
    """An annotation file has a line that cannot be used (malformed, unknown id, box outside its image).

    ``line`` is 1-based; for a ``.mat`` file it counts annotation entries and the message says "entry".
    """

    def __init__(self, path: Path | str, line: int | None, message: str, image_id: str | None = None):
        self.path = Path(path)
        self.line = line
        self.image_id = image_id
        unit = "entry" if self.path.suffix == ".mat" else "line"
        where = f"{self.path}" + (f", {unit} {line}" if line is not None else "")
        about = f" (image {image_id})" if image_id is not None else ""
        super().__init__(f"{where}{about}: {message}")


class ImageReadError(OSError):
    """An image file listed by a dataset cannot be opened or decoded."""

    def __init__(self, image_id: str, path: Path | str, reason: str):
        self.image_id = image_id
        self.path = Path(path)
        super().__init__(
            f"cannot read image {image_id} at {self.path}: {reason}. "
            "Check that the file exists and is a complete JPEG/PNG (re-extract the archive if it was cut short)."
        )
