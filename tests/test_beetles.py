"""The procedural beetles dataset: determinism, geometry, cache and the fast loader (chapter 01)."""

import json
import warnings

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.patches import Rectangle
from torchvision import tv_tensors

from dgdm_lib.data import (
    BeetlesConfig,
    BeetlesDataset,
    beetles_cache_dir,
    beetles_loader,
    beetles_transforms,
    collate_wsol,
    denormalize,
    generate_beetles,
    head_colours,
    load_beetles,
    split_seed,
)
from dgdm_lib.data import beetles as beetles_module
from dgdm_lib.plotting import GT_COLOR, show_samples


@pytest.fixture(scope="module")
def beetles_sample():
    """24 default beetles (three of each class) from one seed."""
    return generate_beetles(24, seed=7)


def _tight_box(mask):
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return [cols[0], rows[0], cols[-1], rows[-1]]


# --- generator -----------------------------------------------------------------------------------


def test_same_seed_gives_bit_identical_images():
    first, second = generate_beetles(6, seed=3), generate_beetles(6, seed=3)
    assert first.content_hash() == second.content_hash()
    np.testing.assert_array_equal(first.images, second.images)


def test_an_image_does_not_depend_on_how_many_are_generated():
    many = generate_beetles(6, seed=3)
    one = generate_beetles(1, seed=3, start=4)
    assert one.content_hash() == many[4].content_hash()


def test_split_seeds_differ_and_give_different_images():
    seeds = {split: split_seed(0, split) for split in ("train", "val", "test")}
    assert len(set(seeds.values())) == 3
    assert split_seed(1, "train") != seeds["train"]
    train, val = generate_beetles(2, seeds["train"]), generate_beetles(2, seeds["val"])
    assert not np.array_equal(train.images, val.images)


def test_labels_cycle_through_the_classes_so_splits_are_balanced(beetles_sample):
    np.testing.assert_array_equal(beetles_sample.labels, np.arange(24) % 8)


def test_box_is_the_tight_inclusive_box_of_the_object_mask(beetles_sample):
    for mask, box in zip(beetles_sample.masks, beetles_sample.boxes):
        assert list(box) == _tight_box(mask)


def test_head_mask_lies_inside_the_object_mask(beetles_sample):
    assert beetles_sample.head_masks.any(axis=(1, 2)).all()
    assert not (beetles_sample.head_masks & ~beetles_sample.masks).any()


def test_whole_beetle_stays_inside_the_image(beetles_sample):
    masks = beetles_sample.masks
    assert not masks[:, 0, :].any() and not masks[:, -1, :].any()
    assert not masks[:, :, 0].any() and not masks[:, :, -1].any()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), index=st.integers(0, 10**6), size=st.sampled_from([32, 48, 64, 96]),
       contrast=st.floats(0.0, 0.3), context_p=st.sampled_from([0.0, 1.0]))
def test_any_beetle_has_a_tight_box_a_head_inside_its_mask_and_fits_the_image(seed, index, size, contrast, context_p):
    config = BeetlesConfig(image_size=size, pattern_contrast=contrast, context_p=context_p)
    beetle = generate_beetles(1, seed, config, start=index)
    mask, head = beetle.masks[0], beetle.head_masks[0]
    assert beetle.images.shape == (1, size, size, 3) and beetle.images.dtype == np.uint8
    assert head.any() and not (head & ~mask).any()
    assert list(beetle.boxes[0]) == _tight_box(mask)
    assert not (mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())
    assert 0.05 < head.sum() / mask.sum() < 0.25


def test_head_colour_alone_names_the_class():
    config = BeetlesConfig(pixel_noise=0.0)
    arrays = generate_beetles(16, seed=5, config=config)
    palette = head_colours(8)
    for image, head, label in zip(arrays.images, arrays.head_masks, arrays.labels):
        eye_free = head & (image.astype(int).sum(axis=-1) > 60)
        mean = image[eye_free].mean(axis=0) / 255.0
        nearest = np.argmin(np.abs(palette - mean).sum(axis=1))
        assert nearest == label


def test_pattern_contrast_changes_only_the_body_and_by_at_most_the_contrast():
    flat = generate_beetles(8, seed=2, config=BeetlesConfig(pattern_contrast=0.0, pixel_noise=0.0))
    strong = generate_beetles(8, seed=2, config=BeetlesConfig(pattern_contrast=0.12, pixel_noise=0.0))
    difference = np.abs(strong.images.astype(int) - flat.images.astype(int)).max(axis=-1)
    assert difference[~flat.masks].max() == 0
    assert difference[flat.head_masks].max() == 0
    assert round(0.12 * 255) - 1 <= difference.max() <= round(0.12 * 255) + 1


def test_summary_shares_land_near_the_spec_figures():
    shares = generate_beetles(160, seed=11).summary()
    assert shares["object_share"] == pytest.approx(0.15, abs=0.02)
    assert shares["box_share"] == pytest.approx(0.37, abs=0.04)
    assert shares["head_share_of_mask"] == pytest.approx(0.12, abs=0.02)


def test_context_background_follows_the_class_group():
    always = generate_beetles(16, seed=1, config=BeetlesConfig(context_p=1.0))
    np.testing.assert_array_equal(always.backgrounds, np.where(always.labels < 4, 1, 2))
    never = generate_beetles(16, seed=1)
    assert not never.backgrounds.any()


def test_image_size_scales_the_geometry():
    small = generate_beetles(32, seed=4, config=BeetlesConfig(image_size=32))
    assert small.images.shape == (32, 32, 32, 3)
    assert small.summary()["object_share"] == pytest.approx(0.15, abs=0.03)


@pytest.mark.parametrize(
    "kwargs, name",
    [({"pattern_contrast": 1.5}, "pattern_contrast"), ({"num_classes": 1}, "num_classes"),
     ({"body_half_length": (19, 13)}, "body_half_length"), ({"context_p": -0.1}, "context_p")],
)
def test_invalid_parameters_are_rejected_by_name(kwargs, name):
    with pytest.raises(ValueError, match=name):
        BeetlesConfig(**kwargs)


def test_unknown_split_is_rejected_with_the_choices(tmp_path):
    with pytest.raises(ValueError, match="train, val, test"):
        load_beetles("validation", root=tmp_path)


# --- cache ---------------------------------------------------------------------------------------


def test_first_use_writes_a_manifest_with_parameters_seed_size_and_hash(tmp_path):
    arrays = load_beetles("val", root=tmp_path, size=12, verbose=False)
    folder = beetles_cache_dir(root=tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["config"] == BeetlesConfig().to_dict()
    assert manifest["generator_version"] == beetles_module.GENERATOR_VERSION
    entry = manifest["splits"]["val"]
    assert entry == {"file": "val.npz", "seed": split_seed(0, "val"), "size": 12, "sha256": arrays.content_hash()}


def test_cached_split_is_reused_without_regenerating(tmp_path, monkeypatch):
    first = load_beetles("test", root=tmp_path, size=10, verbose=False)
    monkeypatch.setattr(beetles_module, "generate_beetles", lambda *a, **k: pytest.fail("regenerated a valid cache"))
    again = load_beetles("test", root=tmp_path, size=10, verbose=False)
    prefix = load_beetles("test", root=tmp_path, size=4, verbose=False)
    assert again.content_hash() == first.content_hash()
    assert prefix.content_hash() == first[:4].content_hash()


def test_different_parameters_never_reuse_the_cache(tmp_path):
    plain = load_beetles("test", root=tmp_path, size=6, verbose=False)
    strong = load_beetles("test", BeetlesConfig(pattern_contrast=0.12), root=tmp_path, size=6, verbose=False)
    assert beetles_cache_dir(root=tmp_path) != beetles_cache_dir(BeetlesConfig(pattern_contrast=0.12), root=tmp_path)
    assert plain.content_hash() != strong.content_hash()


def test_manifest_that_disagrees_with_the_parameters_is_regenerated_with_a_warning(tmp_path):
    original = load_beetles("test", root=tmp_path, size=6, verbose=False)
    manifest_path = beetles_cache_dir(root=tmp_path) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["config"]["pattern_contrast"] = 0.5
    manifest_path.write_text(json.dumps(manifest))
    with pytest.warns(UserWarning, match="parameters differ"):
        again = load_beetles("test", root=tmp_path, size=6, verbose=False)
    assert again.content_hash() == original.content_hash()
    assert json.loads(manifest_path.read_text())["config"]["pattern_contrast"] == 0.09


def test_corrupted_cache_file_is_regenerated_with_a_warning(tmp_path):
    original = load_beetles("test", root=tmp_path, size=6, verbose=False)
    (beetles_cache_dir(root=tmp_path) / "test.npz").write_bytes(b"not a numpy file")
    with pytest.warns(UserWarning, match="cannot be read"):
        again = load_beetles("test", root=tmp_path, size=6, verbose=False)
    assert again.content_hash() == original.content_hash()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_beetles("test", root=tmp_path, size=6, verbose=False)


SMALL = BeetlesConfig(image_size=16)


def _small_cache(tmp_path, split="test"):
    original = load_beetles(split, SMALL, root=tmp_path, size=3, verbose=False)
    return original, beetles_cache_dir(SMALL, root=tmp_path)


def test_truncated_cache_file_is_regenerated_with_a_warning(tmp_path):
    original, folder = _small_cache(tmp_path)
    data = (folder / "test.npz").read_bytes()
    (folder / "test.npz").write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match=r"regenerating beetles test split .*cannot be read \(BadZipFile"):
        again = load_beetles("test", SMALL, root=tmp_path, size=3, verbose=False)
    assert again.content_hash() == original.content_hash()
    assert (folder / "test.npz").read_bytes() == data


def test_any_flipped_byte_of_a_cached_file_is_regenerated_or_harmless(tmp_path):
    original, folder = _small_cache(tmp_path)
    data = (folder / "test.npz").read_bytes()
    # Sparse over the file, dense over the zip directory at its end (every byte was checked once: 16k flips).
    for position in [*range(0, len(data) - 300, 37), *range(len(data) - 300, len(data), 4)]:
        damaged = bytearray(data)
        damaged[position] ^= 0x5A
        (folder / "test.npz").write_bytes(bytes(damaged))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            again = load_beetles("test", SMALL, root=tmp_path, size=3, verbose=False)
        assert again.content_hash() == original.content_hash(), f"byte {position}"


@pytest.mark.parametrize("edit", [
    lambda m: [],
    lambda m: None,
    lambda m: {**m, "splits": []},
    lambda m: {**m, "splits": {"test": "test.npz"}},
    lambda m: {**m, "splits": {"test": {**m["splits"]["test"], "size": "many"}}},
    lambda m: {**m, "splits": {"test": {**m["splits"]["test"], "seed": 1.5}}},
    lambda m: {**m, "splits": {"test": {**m["splits"]["test"], "sha256": 12}}},
    lambda m: {**m, "splits": {"test": {**m["splits"]["test"], "file": "../elsewhere.npz"}}},
    lambda m: {**m, "splits": {"test": {k: v for k, v in m["splits"]["test"].items() if k != "file"}}},
], ids=["list", "null", "splits-list", "entry-string", "size-string", "seed-float", "hash-number", "file-outside",
        "no-file"])
def test_manifest_with_wrong_types_is_regenerated_with_a_warning(tmp_path, edit):
    original, folder = _small_cache(tmp_path)
    manifest_path = folder / "manifest.json"
    manifest_path.write_text(json.dumps(edit(json.loads(manifest_path.read_text()))))
    with pytest.warns(UserWarning, match=r"regenerating beetles test split .*manifest\.json"):
        again = load_beetles("test", SMALL, root=tmp_path, size=3, verbose=False)
    assert again.content_hash() == original.content_hash()
    assert json.loads(manifest_path.read_text())["splits"]["test"]["sha256"] == original.content_hash()
    load_beetles("val", SMALL, root=tmp_path, size=2, verbose=False)  # the manifest takes new entries again


_RACING_WRITER = """
import pathlib, sys, time
from dgdm_lib.data import BeetlesConfig, beetles

root, split, gate = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
generate, read = beetles.generate_beetles, beetles._read_manifest

def generate_together(*args, **kwargs):
    arrays = generate(*args, **kwargs)
    (gate / split).touch()
    deadline = time.monotonic() + 60
    while len(list(gate.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    return arrays

def slow_read(folder):
    manifest = read(folder)
    time.sleep(0.5)  # widen the read-modify-write window of the manifest
    return manifest

beetles.generate_beetles, beetles._read_manifest = generate_together, slow_read
beetles.load_beetles(split, BeetlesConfig(image_size=16), root=root, size=3, verbose=False)
"""


@pytest.mark.slow
def test_two_processes_generating_different_splits_both_end_up_in_the_manifest(tmp_path):
    import subprocess
    import sys

    gate = tmp_path / "gate"
    gate.mkdir()
    writers = [subprocess.Popen([sys.executable, "-c", _RACING_WRITER, str(tmp_path / "data"), split, str(gate)])
               for split in ("val", "test")]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    manifest = json.loads((beetles_cache_dir(SMALL, root=tmp_path / "data") / "manifest.json").read_text())
    assert sorted(manifest["splits"]) == ["test", "val"]


@pytest.mark.slow
def test_default_splits_have_the_spec_sizes(tmp_path):
    # how long generation takes is measured by `make bench` ("Book cost"), not asserted here
    sizes = [len(load_beetles(split, root=tmp_path, verbose=False)) for split in ("train", "val", "test")]
    assert sizes == [4000, 300, 500]


# --- torch Dataset and fast loader -----------------------------------------------------------------


def test_dataset_items_are_tv_tensors_with_edge_boxes(beetles_sample):
    dataset = BeetlesDataset("val", arrays=beetles_sample)
    image, target = dataset[3]
    assert isinstance(image, tv_tensors.Image) and image.shape == (3, 64, 64) and image.dtype == torch.uint8
    assert isinstance(target["boxes"], tv_tensors.BoundingBoxes) and isinstance(target["mask"], tv_tensors.Mask)
    x0, y0, x1, y1 = beetles_sample.boxes[3]
    assert target["boxes"].tolist() == [[x0, y0, x1 + 1, y1 + 1]]
    assert target["label"] == 3 and target["image_id"] == "val/00003"


def test_flip_transform_mirrors_image_mask_and_box_together(beetles_sample):
    dataset = BeetlesDataset("val", arrays=beetles_sample, transform=beetles_transforms(train=True, hflip_p=1.0))
    image, target = dataset[5]
    x0, y0, x1, y1 = beetles_sample.boxes[5]
    assert target["boxes"].tolist() == [[64 - (x1 + 1), y0, 64 - x0, y1 + 1]]
    np.testing.assert_array_equal(target["mask"].numpy(), beetles_sample.masks[5][:, ::-1])
    shown = (denormalize(image) * 255).round().byte().permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(shown, beetles_sample.images[5][:, ::-1])


def test_collate_gives_the_contract_batch(beetles_sample):
    dataset = BeetlesDataset("val", arrays=beetles_sample, transform=beetles_transforms(train=False))
    images, targets = collate_wsol([dataset[i] for i in range(4)])
    assert type(images) is torch.Tensor and images.shape == (4, 3, 64, 64) and images.dtype == torch.float32
    assert targets["label"].dtype == torch.long and targets["label"].tolist() == [0, 1, 2, 3]
    assert len(targets["boxes"]) == 4 and all(b.shape == (1, 4) for b in targets["boxes"])
    assert targets["mask"].shape == (4, 64, 64) and targets["head_mask"].dtype == torch.bool


def test_fast_loader_flips_boxes_with_their_masks_and_is_reproducible(tmp_path):
    arrays = load_beetles("val", root=tmp_path, size=40, verbose=False)

    def epoch(seed):
        loader = beetles_loader("val", batch_size=16, shuffle=True, hflip=True, size=40, root=tmp_path,
                                seed=seed)
        return list(loader)

    batches = epoch(0)
    assert [len(images) for images, _ in batches] == [16, 16, 8]
    ids = sorted(i for _, targets in batches for i in targets["image_id"])
    assert ids == [f"val/{k:05d}" for k in range(40)]
    flipped = 0
    for _, targets in batches:
        for box, mask, image_id in zip(targets["boxes"], targets["mask"], targets["image_id"]):
            x0, y0, x1, y1 = _tight_box(mask.numpy())
            assert box.tolist() == [[x0, y0, x1 + 1, y1 + 1]]
            original = arrays.masks[int(image_id.split("/")[1])]
            flipped += not np.array_equal(mask.numpy(), original)
    assert 5 < flipped < 35
    again = epoch(0)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again))
    assert not torch.equal(batches[0][0], epoch(1)[0][0])


def test_fast_loader_without_shuffle_matches_the_arrays(tmp_path):
    arrays = load_beetles("test", root=tmp_path, size=8, verbose=False)
    images, targets = next(iter(beetles_loader("test", batch_size=8, size=8, root=tmp_path)))
    shown = (denormalize(images) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(shown, arrays.images)
    assert targets["label"].tolist() == arrays.labels.tolist()


# --- figure --------------------------------------------------------------------------------------


def test_show_samples_draws_one_panel_per_image_with_red_boxes(beetles_sample):
    part = beetles_sample[:6]
    fig = show_samples(part.images, part.edge_boxes(), part.masks, part.labels, ncols=3)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 6
    red_rgb = matplotlib.colors.to_rgb(GT_COLOR)
    red = [p for p in panels[0].patches if isinstance(p, Rectangle) and p.get_edgecolor()[:3] == red_rgb]
    x0, y0, x1, y1 = part.boxes[0]
    assert len(red) == 1 and red[0].get_xy() == (x0 - 0.5, y0 - 0.5) and red[0].get_width() == x1 + 1 - x0
    assert panels[0].get_title() == "class 0"
