"""GT boxes of real photographs follow the reference evaluator's conversion (docs/methods.md, "Box conventions")."""


import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from dgdm_lib.cli import main
from dgdm_lib.data import CUB200, make_loader, standard_transforms
from dgdm_lib.evaluation import collect_cams, evaluate_loader, resolve_protocol
from dgdm_lib.localization import box_iou, edges_to_inclusive, largest_region_box, reference_boxes


def _reference_rule(box, image_w, image_h, size_w, size_h):
    """The reference's resize, transcribed coordinate by coordinate in Python floats."""
    x0, y0, x1, y1 = map(float, box)
    return [int(x0 * size_w / image_w), int(y0 * size_h / image_h), int(x1 * size_w / image_w),
            int(y1 * size_h / image_h)]


def test_reference_boxes_equal_the_reference_rule_on_random_cub_like_annotations() -> None:
    rng = np.random.default_rng(0)
    for _ in range(2000):
        w, h = (int(v) for v in rng.integers(120, 501, size=2))
        x, y = int(rng.integers(0, w - 10)), int(rng.integers(0, h - 10))
        bw, bh = int(rng.integers(1, w - x + 1)), int(rng.integers(1, h - y + 1))
        box = [x, y, x + bw, y + bh]
        assert reference_boxes([box], (h, w), (224, 224))[0].tolist() == _reference_rule(box, w, h, 224, 224)


def test_whole_number_scaled_coordinates_stay_whole() -> None:
    # 75 * 224 / 300 = 56 exactly; a float32 product (55.999996) would truncate to 55.
    assert reference_boxes([[75, 75, 150, 300]], (300, 300), (224, 224)).tolist() == [[56, 56, 112, 224]]


def test_a_map_covering_exactly_a_10x10_object_scores_iou_1_with_the_reference_boxes() -> None:
    cam = np.zeros((224, 224))
    cam[60:70, 50:60] = 1.0  # rows 60..69, columns 50..59: the annotation x 50, y 60, w 10, h 10
    predicted = largest_region_box(cam, 0.5)
    reference = reference_boxes([[50, 60, 60, 70]], (224, 224), (224, 224))
    edges = edges_to_inclusive(np.array([[50.0, 60.0, 60.0, 70.0]]), 224, 224)
    assert box_iou(predicted, reference)[0, 0] == 1.0
    assert box_iou(predicted, edges)[0, 0] == pytest.approx(100 / 121)


def test_the_defaults_are_the_reference_protocol_for_photos_and_the_library_one_for_beetles() -> None:
    photo = {"boxes": [], "source_boxes": [], "source_size": []}
    assert resolve_protocol(photo, None, None) == ("bicubic", "reference")
    assert resolve_protocol({"boxes": []}, None, None) == ("bilinear", "edges")
    assert resolve_protocol(photo, "bilinear", "edges") == ("bilinear", "edges")
    with pytest.raises(ValueError, match="only the real-photo datasets"):
        resolve_protocol({"boxes": []}, None, "reference")
    with pytest.raises(ValueError, match="upsample must be one of"):
        resolve_protocol(photo, "nearest", None)


class _MeanColourNet(nn.Module):
    """forward_features: the image pooled to 7 x 7; two classes from the mean colour."""

    def __init__(self) -> None:
        super().__init__()
        self.classifier = nn.Linear(3, 2)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return nn.functional.adaptive_avg_pool2d(images, 7)


@pytest.fixture
def cub_root(tmp_path):
    root = tmp_path / "CUB_200_2011"
    (root / "images" / "001.A").mkdir(parents=True)
    sizes = {1: (300, 200), 2: (333, 250), 3: (500, 375)}  # (w, h)
    boxes = {1: (75, 20, 150, 100), 2: (10, 31, 200, 170), 3: (123, 45, 301, 222)}  # x, y, w, h
    rows = {"images.txt": [], "image_class_labels.txt": [], "train_test_split.txt": [], "bounding_boxes.txt": []}
    for i, (w, h) in sizes.items():
        pixels = np.random.default_rng(i).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "images" / "001.A" / f"{i}.png")
        rows["images.txt"].append(f"{i} 001.A/{i}.png")
        rows["image_class_labels.txt"].append(f"{i} 1")
        rows["train_test_split.txt"].append(f"{i} 0")
        rows["bounding_boxes.txt"].append(f"{i} " + " ".join(f"{v}.0" for v in boxes[i]))
    for name, lines in rows.items():
        (root / name).write_text("\n".join(lines) + "\n")
    (root / "classes.txt").write_text("1 001.A\n")
    return root, sizes, boxes


def test_collect_cams_converts_cub_boxes_the_reference_way_by_default(cub_root) -> None:
    root, sizes, boxes = cub_root
    loader = make_loader(CUB200(root, "test", transform=standard_transforms(train=False)), batch_size=2)
    camset = collect_cams(_MeanColourNet(), loader)
    for got, i in zip(camset.gt_boxes, sorted(sizes)):
        (w, h), (x, y, bw, bh) = sizes[i], boxes[i]
        assert got.tolist() == [_reference_rule([x, y, x + bw, y + bh], w, h, 224, 224)]
    edges = collect_cams(_MeanColourNet(), loader, boxes="edges")
    assert any(a.tolist() != b.tolist() for a, b in zip(camset.gt_boxes, edges.gt_boxes))


def test_bicubic_is_the_default_upsampling_of_photographs(cub_root) -> None:
    root, _, _ = cub_root
    loader = make_loader(CUB200(root, "test", transform=standard_transforms(train=False)), batch_size=3)
    torch.manual_seed(0)
    net = _MeanColourNet()
    default, bicubic = collect_cams(net, loader), collect_cams(net, loader, upsample="bicubic")
    bilinear = collect_cams(net, loader, upsample="bilinear")
    assert np.array_equal(default.cams, bicubic.cams) and not np.allclose(default.cams, bilinear.cams)


def test_reference_boxes_refuse_a_transform_that_crops(cub_root) -> None:
    root, _, _ = cub_root
    torch.manual_seed(0)
    loader = make_loader(CUB200(root, "test", transform=standard_transforms(train=True)), batch_size=3)
    with pytest.raises(ValueError, match="standard_transforms\\(train=False\\)"):
        evaluate_loader(_MeanColourNet(), loader)


def test_the_command_line_refuses_reference_boxes_on_beetles(tmp_path, capsys) -> None:
    assert main(["train", "--boxes", "reference", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --boxes reference") and not (tmp_path / "run").exists()


@pytest.mark.parametrize("side", [7, 14, 28])
def test_bicubic_upsampling_equals_opencvs_cubic_resize(side: int) -> None:
    import cv2

    from dgdm_lib.cam import upsample_cams

    cam = np.random.default_rng(side).random((side, side)).astype(np.float32)
    theirs = cv2.resize(cam, (224, 224), interpolation=cv2.INTER_CUBIC)
    ours = upsample_cams(torch.from_numpy(cam)[None], (224, 224), "bicubic")[0].numpy()
    assert np.abs(theirs - ours).max() < 1e-6
