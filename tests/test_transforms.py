"""Boxes and masks follow every transform: resize, random crop and flip (checked by hand)."""

import pytest
import torch
from torchvision import tv_tensors

from dgdm_lib.data import denormalize, normalize, standard_transforms


def _sample(height, width, box, mask=None):
    """A uint8 image whose red channel holds the column index and green the row index (mod 256)."""
    cols = torch.arange(width).remainder(256).to(torch.uint8).expand(height, width)
    rows = torch.arange(height).remainder(256).to(torch.uint8)[:, None].expand(height, width)
    image = tv_tensors.Image(torch.stack([cols, rows, torch.zeros_like(cols)]))
    target = {"label": 1, "boxes": tv_tensors.BoundingBoxes([box], format="XYXY", canvas_size=(height, width),
                                                           dtype=torch.float32)}
    if mask is not None:
        target["mask"] = tv_tensors.Mask(mask)
    return image, target


def _pixels(image):
    return (denormalize(image) * 255).round().long()


def test_test_transform_scales_boxes_by_the_resize_factors():
    image, target = _sample(100, 200, [20.0, 10.0, 60.0, 30.0])
    out, out_target = standard_transforms(train=False)(image, target)
    assert out.shape == (3, 224, 224)
    # x scales by 224 / 200 = 1.12 and y by 224 / 100 = 2.24
    assert out_target["boxes"][0].tolist() == pytest.approx([22.4, 22.4, 67.2, 67.2])
    assert out_target["boxes"].canvas_size == (224, 224)


def test_train_transform_crop_and_flip_move_the_box_as_computed_by_hand():
    box = [100.0, 50.0, 180.0, 120.0]
    seen_flips = set()
    for seed in range(8):
        torch.manual_seed(seed)
        image, target = _sample(256, 256, box)
        out, out_target = standard_transforms(train=True, resize=256, crop=224)(image, target)
        pixels = _pixels(out)
        flipped = bool(pixels[0, 0, 1] < pixels[0, 0, 0])
        left = int(pixels[0, 0, -1] if flipped else pixels[0, 0, 0])  # the crop's first source column
        top = int(pixels[1, 0, 0])
        x0, y0, x1, y1 = box[0] - left, box[1] - top, box[2] - left, box[3] - top
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, 224), min(y1, 224)
        expected = [224 - x1, y0, 224 - x0, y1] if flipped else [x0, y0, x1, y1]
        assert out_target["boxes"].tolist() == [expected], f"seed {seed}: crop at ({left}, {top}), flip {flipped}"
        seen_flips.add(flipped)
    assert seen_flips == {True, False}


def test_box_the_crop_cuts_off_is_dropped_and_the_mask_follows_the_same_crop():
    mask = torch.zeros(256, 256, dtype=torch.bool)
    mask[0:10, 0:10] = True
    for seed in range(20):
        torch.manual_seed(seed)
        image, target = _sample(256, 256, [0.0, 0.0, 10.0, 10.0], mask)
        out, out_target = standard_transforms(train=True)(image, target)
        pixels = _pixels(out)
        if min(int(pixels[0, 0, 0]), int(pixels[0, 0, -1])) >= 10:
            assert out_target["boxes"].shape == (0, 4)
            assert not out_target["mask"].any()
            return
    pytest.fail("no seed cropped the box away")


def test_mask_and_box_stay_together_through_resize_crop_and_flip():
    mask = torch.zeros(128, 128, dtype=torch.bool)
    mask[40:90, 30:70] = True  # rows 40..89, columns 30..69: edge box [30, 40, 70, 90]
    for seed in range(4):
        torch.manual_seed(seed)
        image, target = _sample(128, 128, [30.0, 40.0, 70.0, 90.0], mask)
        _, out_target = standard_transforms(train=True)(image, target)
        rows = torch.nonzero(out_target["mask"].any(dim=1)).ravel()
        cols = torch.nonzero(out_target["mask"].any(dim=0)).ravel()
        from_mask = [int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1]
        assert out_target["boxes"][0].tolist() == pytest.approx(from_mask, abs=1.0)


def test_normalize_and_denormalize_round_trip_uint8_images():
    images = torch.randint(0, 256, (2, 3, 5, 7), dtype=torch.uint8)
    back = (denormalize(normalize(images)) * 255).round().to(torch.uint8)
    assert torch.equal(back, images)


def test_crop_larger_than_resize_is_rejected():
    with pytest.raises(ValueError, match="crop"):
        standard_transforms(train=True, resize=200, crop=224)
