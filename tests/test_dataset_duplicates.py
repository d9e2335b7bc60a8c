"""Duplicates, split values, encodings and empty files in the CUB and wsolevaluation readers
(issue 13, items 3 and 11): each is refused with the file and the line."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_datasets import cub_root, wsol_roots  # noqa: F401  (fixtures; tests/ is on sys.path under pytest)

from dgdm_lib.data import CUB200, AnnotationError, WSOLMetadataDataset


def _append(path: Path, text: str) -> int:
    """Append one line; return its 1-based line number."""
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines + [text]) + "\n")
    return len(lines) + 1


@pytest.mark.parametrize("name,line,words", [
    ("images.txt", "4 001.Alpha_beetle/img_0001.png", "image id 4 appears again"),
    ("bounding_boxes.txt", "1 1 1 5 5", "second box for this image"),
    ("image_class_labels.txt", "1 2", "image id 1 appears again with other values"),
    ("classes.txt", "2 004.Delta", "class id 2 appears again"),
    ("train_test_split.txt", "3 0", "image id 3 appears again with other values"),
])
def test_cub_duplicate_lines_are_refused_with_file_and_line(cub_root, name, line, words):  # noqa: F811
    number = _append(cub_root / name, line)
    with pytest.raises(AnnotationError, match=words) as caught:
        CUB200(cub_root, "test")
    assert caught.value.path == cub_root / name and caught.value.line == number


def test_cub_identical_repeated_label_lines_are_harmless(cub_root):  # noqa: F811
    _append(cub_root / "image_class_labels.txt", "1 3")
    assert len(CUB200(cub_root, "trainval")) == 3


@pytest.mark.parametrize("value", ["2", "-1", "train"])
def test_cub_split_values_other_than_0_or_1_are_refused(cub_root, value):  # noqa: F811
    file = cub_root / "train_test_split.txt"
    file.write_text(file.read_text().replace("2 0", f"2 {value}"))
    with pytest.raises(AnnotationError, match="must be 1 \\(train\\) or 0 \\(test\\)") as caught:
        CUB200(cub_root, "train")
    assert caught.value.line == 2 and caught.value.image_id == "2"


@pytest.mark.parametrize("value,split,words", [("1", "test", "no test images"), ("0", "train", "no training images")])
def test_cub_all_train_or_all_test_split_says_so(cub_root, value, split, words):  # noqa: F811
    file = cub_root / "train_test_split.txt"
    file.write_text("".join(f"{i} {value}\n" for i in range(1, 7)))
    with pytest.raises(AnnotationError, match=words):
        CUB200(cub_root, split)


def test_cub_empty_images_txt_is_blamed_on_images_txt(cub_root):  # noqa: F811
    (cub_root / "images.txt").write_text("\n")
    with pytest.raises(AnnotationError, match="images.txt: the file is empty"):
        CUB200(cub_root, "train")


def test_cub_non_utf8_annotation_names_file_and_line(cub_root):  # noqa: F811
    file = cub_root / "classes.txt"
    file.write_bytes(file.read_bytes() + b"4 004.D\xe9lta\n")
    with pytest.raises(AnnotationError, match="not UTF-8") as caught:
        CUB200(cub_root, "train")
    assert caught.value.path == file and caught.value.line == 4


def test_cub_byte_order_mark_is_accepted(cub_root):  # noqa: F811
    file = cub_root / "images.txt"
    file.write_bytes(b"\xef\xbb\xbf" + file.read_bytes())
    assert len(CUB200(cub_root, "trainval")) == 3


@pytest.mark.parametrize("name,line,words", [
    ("image_ids.txt", "a/one.png", "image id a/one.png appears again"),
    ("class_labels.txt", "a/two.png,3", "appears again with other values"),
    ("image_sizes.txt", "a/one.png,41,30", "appears again with other values"),
])
def test_wsol_duplicate_lines_are_refused_with_file_and_line(wsol_roots, name, line, words):  # noqa: F811
    images, metadata = wsol_roots
    number = _append(metadata / "test" / name, line)
    with pytest.raises(AnnotationError, match=words) as caught:
        WSOLMetadataDataset(images, metadata, "test")
    assert caught.value.path == metadata / "test" / name and caught.value.line == number


def test_wsol_empty_image_ids_says_so(wsol_roots):  # noqa: F811
    images, metadata = wsol_roots
    (metadata / "test" / "image_ids.txt").write_text("")
    with pytest.raises(AnnotationError, match="image_ids.txt: the file is empty"):
        WSOLMetadataDataset(images, metadata, "test")
