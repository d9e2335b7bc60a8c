"""Real datasets read from local folders in their native layouts (fixtures written here, nothing downloaded)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat
from torchvision import tv_tensors

from dgdm_lib.data import (
    CUB200,
    AnnotationError,
    DatasetLayoutError,
    ImageReadError,
    StanfordCars,
    WSOLMetadataDataset,
    collate_wsol,
    make_loader,
    standard_transforms,
)

# (width, height) of each fixture image, and an x, y, w, h box inside it
CUB_IMAGES = {
    1: ((40, 30), (5, 4, 20, 10), 3, True),
    2: ((32, 48), (0, 0, 32, 48), 1, False),
    3: ((36, 36), (10.5, 2.5, 8, 20), 2, True),
    4: ((40, 30), (1, 1, 30, 20), 3, False),
    5: ((24, 20), (2, 3, 4, 5), 1, True),
    6: ((30, 40), (6, 7, 8, 9), 2, False),
}
CLASS_NAMES = {1: "001.Alpha_beetle", 2: "002.Beta_bird", 3: "003.Gamma_car"}


def _write_image(path: Path, size: tuple[int, int], value: int = 90) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, 120, 200)).save(path)


def _cub_path(image_id: int, class_id: int) -> str:
    return f"{CLASS_NAMES[class_id]}/img_{image_id:04d}.png"


@pytest.fixture
def cub_root(tmp_path) -> Path:
    """A 6-image CUB_200_2011 folder in the native layout (classes.txt written out of id order)."""
    root = tmp_path / "CUB_200_2011"
    root.mkdir()
    (root / "classes.txt").write_text("".join(f"{k} {CLASS_NAMES[k]}\n" for k in (3, 1, 2)))
    images, labels, split, boxes = [], [], [], []
    for image_id, (size, (x, y, w, h), class_id, train) in CUB_IMAGES.items():
        path = _cub_path(image_id, class_id)
        _write_image(root / "images" / path, size)
        images.append(f"{image_id} {path}\n")
        labels.append(f"{image_id} {class_id}\n")
        split.append(f"{image_id} {int(train)}\n")
        boxes.append(f"{image_id} {x} {y} {w} {h}\n")
    (root / "images.txt").write_text("".join(images))
    (root / "image_class_labels.txt").write_text("".join(labels))
    (root / "train_test_split.txt").write_text("".join(split))
    (root / "bounding_boxes.txt").write_text("".join(boxes))
    return root


# --- CUB-200-2011 ----------------------------------------------------------------------------------


def test_cub_splits_images_by_train_test_split(cub_root):
    assert len(CUB200(cub_root, "trainval")) == 3 and len(CUB200(cub_root, "test")) == 3


def test_cub_labels_are_zero_based_in_class_id_order(cub_root):
    dataset = CUB200(cub_root, "trainval")
    assert dataset.classes == ["001.Alpha_beetle", "002.Beta_bird", "003.Gamma_car"]
    assert [s["label"] for s in dataset.samples] == [2, 1, 0]  # images 1, 3, 5 have class ids 3, 2, 1


def test_cub_xywh_boxes_become_xyxy_pixel_edges(cub_root):
    image, target = CUB200(cub_root, "trainval")[1]  # image 3: x 10.5, y 2.5, w 8, h 20 in a 36x36 image
    assert isinstance(image, tv_tensors.Image) and image.shape == (3, 36, 36)
    assert isinstance(target["boxes"], tv_tensors.BoundingBoxes)
    assert target["boxes"].tolist() == [[10.5, 2.5, 18.5, 22.5]]
    assert target["label"] == 1 and target["image_id"] == _cub_path(3, 2)


def test_cub_test_transform_puts_boxes_in_the_resized_frame(cub_root):
    _, target = CUB200(cub_root, "trainval", transform=standard_transforms(train=False))[0]
    # image 1 is 40x30 with box x 5..25, y 4..14: scaled by 224/40 and 224/30
    assert target["boxes"][0].tolist() == pytest.approx([5 * 5.6, 4 * 224 / 30, 25 * 5.6, 14 * 224 / 30], rel=1e-5)


def test_cub_is_found_from_a_parent_folder_or_dgdm_data(cub_root, monkeypatch):
    assert len(CUB200(cub_root.parent, "test")) == 3
    monkeypatch.delenv("DGDM_CUB_ROOT", raising=False)  # make test names the development copy
    monkeypatch.setenv("DGDM_DATA", str(cub_root.parent))
    assert CUB200(split="test").root == cub_root


def test_cub_missing_root_names_the_path_the_layout_and_the_source(tmp_path):
    with pytest.raises(DatasetLayoutError) as error:
        CUB200(tmp_path / "nowhere")
    message = str(error.value)
    assert str(tmp_path / "nowhere") in message and "bounding_boxes.txt" in message and "CUB_200_2011.tgz" in message
    assert isinstance(error.value, FileNotFoundError)


def test_cub_missing_file_is_named(cub_root):
    (cub_root / "train_test_split.txt").unlink()
    with pytest.raises(DatasetLayoutError, match="missing train_test_split.txt"):
        CUB200(cub_root)


@pytest.mark.parametrize(
    "bad_line, expected", [("3 10 2 x 20", "expected a number"), ("3 10 2 8", "expected 5 fields")]
)
def test_cub_malformed_box_line_names_the_file_and_line(cub_root, bad_line, expected):
    lines = (cub_root / "bounding_boxes.txt").read_text().splitlines()
    lines[2] = bad_line
    (cub_root / "bounding_boxes.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(AnnotationError, match=expected) as error:
        CUB200(cub_root)
    assert error.value.line == 3 and error.value.path.name == "bounding_boxes.txt"
    assert "bounding_boxes.txt, line 3" in str(error.value)


def test_cub_unknown_image_id_is_reported_with_its_id(cub_root):
    with open(cub_root / "bounding_boxes.txt", "a") as stream:
        stream.write("99 1 1 5 5\n")
    with pytest.raises(AnnotationError, match="image 99.*unknown image id") as error:
        CUB200(cub_root)
    assert error.value.image_id == "99" and error.value.line == 7


def test_cub_unknown_class_id_is_reported(cub_root):
    (cub_root / "image_class_labels.txt").write_text("1 3\n2 1\n3 7\n4 3\n5 1\n6 2\n")
    with pytest.raises(AnnotationError, match="line 3.*class id 7"):
        CUB200(cub_root)


def test_cub_box_outside_its_image_is_reported_with_the_image_id(cub_root):
    lines = (cub_root / "bounding_boxes.txt").read_text().splitlines()
    lines[0] = "1 30 4 20 10"  # x1 = 50 in a 40-pixel-wide image
    (cub_root / "bounding_boxes.txt").write_text("\n".join(lines) + "\n")
    dataset = CUB200(cub_root, "trainval")
    with pytest.raises(AnnotationError, match="outside its 40x30 image") as error:
        dataset[0]
    assert error.value.image_id.startswith("1 (") and error.value.line == 1


def test_cub_unreadable_image_is_reported_with_the_image_id(cub_root):
    (cub_root / "images" / _cub_path(5, 1)).write_bytes(b"definitely not a png")
    dataset = CUB200(cub_root, "trainval")
    with pytest.raises(ImageReadError, match="cannot read image 5 ") as error:
        dataset[2]
    assert error.value.path.name == "img_0005.png"
    (cub_root / "images" / _cub_path(1, 3)).unlink()
    with pytest.raises(ImageReadError, match="file not found"):
        dataset[0]


def test_loader_batches_cub_in_the_contract_format(cub_root):
    loader = make_loader(CUB200(cub_root, "trainval", transform=standard_transforms(train=True)), batch_size=3)
    images, targets = next(iter(loader))
    assert type(images) is torch.Tensor and images.shape == (3, 3, 224, 224) and images.dtype == torch.float32
    assert targets["label"].tolist() == [2, 1, 0]
    assert [b.shape for b in targets["boxes"]] == [(1, 4)] * 3
    assert all(((b >= 0) & (b <= 224)).all() for b in targets["boxes"])


def test_collating_images_of_different_sizes_says_to_add_a_transform(cub_root):
    dataset = CUB200(cub_root, "trainval")
    with pytest.raises(ValueError, match="standard_transforms"):
        collate_wsol([dataset[0], dataset[1]])


# --- wsolevaluation metadata ----------------------------------------------------------------------


@pytest.fixture
def wsol_roots(tmp_path) -> tuple[Path, Path]:
    """dataset/CUB images and metadata/CUB/{train,test} in the wsolevaluation layout; one image has 2 boxes."""
    images = tmp_path / "dataset" / "CUB"
    test = tmp_path / "metadata" / "CUB" / "test"
    train = tmp_path / "metadata" / "CUB" / "train"
    test.mkdir(parents=True)
    train.mkdir(parents=True)
    files = {"a/one.png": ((40, 30), 0), "a/two.png": ((20, 20), 0), "b/three.png": ((50, 40), 4)}
    for path, (size, _) in files.items():
        _write_image(images / path, size)
    (test / "image_ids.txt").write_text("".join(f"{p}\n" for p in files))
    (test / "class_labels.txt").write_text("".join(f"{p},{label}\n" for p, (_, label) in files.items()))
    (test / "image_sizes.txt").write_text("".join(f"{p},{w},{h}\n" for p, ((w, h), _) in files.items()))
    (test / "localization.txt").write_text(
        "a/one.png,1,2,30,20\nb/three.png,0,0,10,10\na/two.png,3,3,19,19\nb/three.png,20,5,50,40\n")
    (train / "image_ids.txt").write_text("a/one.png\n")
    (train / "class_labels.txt").write_text("a/one.png,0\n")
    return images, tmp_path / "metadata" / "CUB"


def test_wsol_metadata_reads_labels_and_several_boxes_per_image(wsol_roots):
    dataset = WSOLMetadataDataset(*wsol_roots, split="test")
    assert len(dataset) == 3 and dataset.num_classes == 5
    image, target = dataset[2]
    assert image.shape == (3, 40, 50) and target["label"] == 4 and target["image_id"] == "b/three.png"
    assert target["boxes"].tolist() == [[0, 0, 10, 10], [20, 5, 50, 40]]


def test_wsol_metadata_accepts_the_split_folder_and_train_without_boxes(wsol_roots):
    images, metadata = wsol_roots
    assert len(WSOLMetadataDataset(images, metadata / "test")) == 3
    _, target = WSOLMetadataDataset(images, metadata, split="train")[0]
    assert target["boxes"].shape == (0, 4)


def test_wsol_metadata_missing_folder_names_the_expected_files(wsol_roots):
    images, metadata = wsol_roots
    with pytest.raises(DatasetLayoutError, match="image_ids.txt.*wsolevaluation"):
        WSOLMetadataDataset(images, metadata / "val_missing", split="val")


def test_wsol_metadata_malformed_box_line_names_file_and_line(wsol_roots):
    images, metadata = wsol_roots
    (metadata / "test" / "localization.txt").write_text("a/one.png,1,2,30,20\na/two.png,3,three,19,19\n")
    with pytest.raises(AnnotationError, match=r"localization.txt, line 2 \(image a/two.png\): expected a number"):
        WSOLMetadataDataset(images, metadata)


def test_wsol_metadata_unknown_image_id_is_reported(wsol_roots):
    images, metadata = wsol_roots
    with open(metadata / "test" / "class_labels.txt", "a") as stream:
        stream.write("c/ghost.png,1\n")
    with pytest.raises(AnnotationError, match="line 4 \\(image c/ghost.png\\): unknown image id"):
        WSOLMetadataDataset(images, metadata)


def test_wsol_metadata_box_outside_the_listed_size_is_reported_with_its_id(wsol_roots):
    images, metadata = wsol_roots
    (metadata / "test" / "localization.txt").write_text("a/two.png,3,3,25,19\n")
    with pytest.raises(AnnotationError, match="line 1 \\(image a/two.png\\): box .* outside its 20x20 image"):
        WSOLMetadataDataset(images, metadata)


def test_wsol_metadata_size_that_disagrees_with_the_file_is_reported(wsol_roots):
    images, metadata = wsol_roots
    _write_image(images / "a" / "two.png", (22, 20))
    with pytest.raises(AnnotationError, match="lists 20x20 but the file is 22x20"):
        WSOLMetadataDataset(images, metadata)[1]


# --- Stanford Cars ---------------------------------------------------------------------------------

CAR_FIELDS = [("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"), ("bbox_y2", "O"), ("class", "O"), ("fname", "O")]


def _write_annotations(path: Path, rows: list[tuple]) -> None:
    fields = CAR_FIELDS[: len(rows[0])]
    table = np.zeros((1, len(rows)), dtype=fields)
    for k, row in enumerate(rows):
        table[0, k] = row
    savemat(path, {"annotations": table})


@pytest.fixture
def cars_root(tmp_path) -> Path:
    """stanford_cars with devkit/, cars_train/, cars_test/ and cars_test_annos_withlabels.mat (3 classes)."""
    root = tmp_path / "stanford_cars"
    (root / "devkit").mkdir(parents=True)
    names = np.array([["Audi A1", "BMW M3", "Fiat 500"]], dtype=object)
    savemat(root / "devkit" / "cars_meta.mat", {"class_names": names})
    _write_annotations(root / "devkit" / "cars_train_annos.mat",
                       [(3, 2, 12, 9, 2, "00001.png"), (1, 1, 30, 20, 3, "00002.png")])
    _write_annotations(root / "cars_test_annos_withlabels.mat", [(5, 5, 10, 10, 1, "00001.png")])
    for split in ("train", "test"):
        for name in ("00001.png", "00002.png"):
            _write_image(root / f"cars_{split}" / name, (30, 20))
    return root


def test_cars_inclusive_one_based_boxes_become_zero_based_pixel_edges(cars_root):
    dataset = StanfordCars(cars_root, "train")
    assert len(dataset) == 2 and dataset.classes == ["Audi A1", "BMW M3", "Fiat 500"]
    _, target = dataset[0]
    # columns 3..12 and rows 2..9 (1-based, inclusive) are 0-based columns 2..11, rows 1..8: edges [2, 1, 12, 9]
    assert target["boxes"].tolist() == [[2, 1, 12, 9]] and target["label"] == 1
    _, whole = dataset[1]
    assert whole["boxes"].tolist() == [[0, 0, 30, 20]] and whole["label"] == 2


def test_cars_test_split_reads_the_annotations_with_labels(cars_root):
    dataset = StanfordCars(cars_root, "test")
    assert len(dataset) == 1 and dataset[0][1]["label"] == 0
    (cars_root / "cars_test_annos_withlabels.mat").rename(cars_root / "devkit" / "cars_test_annos_withlabels.mat")
    assert len(StanfordCars(cars_root, "test")) == 1


def test_cars_missing_devkit_names_the_expected_layout(cars_root):
    (cars_root / "devkit" / "cars_meta.mat").unlink()
    with pytest.raises(DatasetLayoutError, match="missing devkit/cars_meta.mat.*cars_train_annos.mat"):
        StanfordCars(cars_root)
    with pytest.raises(DatasetLayoutError, match="Stanford Cars not found"):
        StanfordCars(cars_root / "elsewhere")


def test_cars_test_annotations_without_classes_say_which_file_is_needed(cars_root):
    _write_annotations(cars_root / "cars_test_annos_withlabels.mat", [(5, 5, 10, 10)])
    with pytest.raises(AnnotationError, match="lack the fields class, fname.*withlabels"):
        StanfordCars(cars_root, "test")


def test_cars_bad_entry_is_reported_with_its_entry_number(cars_root):
    _write_annotations(cars_root / "devkit" / "cars_train_annos.mat",
                       [(3, 2, 12, 9, 2, "00001.png"), (1, 1, 30, 20, 9, "00002.png")])
    with pytest.raises(AnnotationError, match=r"entry 2 \(image 00002.png\): class 9 is outside 1..3"):
        StanfordCars(cars_root)


def test_dgdm_cub_root_names_the_default_cub_folder(cub_root, monkeypatch, tmp_path):
    monkeypatch.setenv("DGDM_DATA", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("DGDM_CUB_ROOT", str(cub_root))
    assert CUB200(split="test").root == cub_root
