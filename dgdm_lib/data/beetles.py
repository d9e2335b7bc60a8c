"""The embedded WSOL dataset: procedural "beetles" (chapter 01).

Every beetle has the same body; only two cues name its class:

* the **head**, a small disc in one of ``num_classes`` saturated colours: it alone identifies the
  class and covers about 12% of the object mask;
* the **body texture**, one of 4 patterns chosen by ``class mod 4`` at a low ``pattern_contrast``:
  a weak cue spread over the whole body.

A classifier trained on image labels finds the head first, so plain CAM boxes only the head: the
WSOL phenomenon, visible on a laptop CPU in seconds. Erasing the head during training pushes the
network to use the body pattern and its map spreads over the object.

Each image is drawn from its own random generator seeded by ``(split seed, index)``, so image ``i``
is the same whatever the number of images generated. Geometry is given in pixels for a 64-pixel
image and scales with ``image_size``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from dgdm_lib.atomic import atomic_write, atomic_write_json, locked
from dgdm_lib.config import data_dir

#: Bump when the drawing code changes: cached splits made by another version are regenerated.
GENERATOR_VERSION = 2
SPLITS = ("train", "val", "test")
#: Default number of images per split (train / val for choosing thresholds / test).
SPLIT_SIZES = {"train": 4000, "val": 300, "test": 500}
PATTERNS = ("cross stripes", "lengthwise stripes", "checks", "blocks")
BACKGROUNDS = ("plain", "water", "sand")
_SPLIT_CODES = {"train": 1, "val": 2, "test": 3}
_REFERENCE_SIZE = 64

# Saturated head colours for up to 8 classes (RGB in [0, 1]); more classes get evenly spaced hues.
_HEAD_COLOURS = (
    (0.90, 0.10, 0.10),  # red
    (0.98, 0.55, 0.05),  # orange
    (0.95, 0.92, 0.10),  # yellow
    (0.15, 0.80, 0.15),  # green
    (0.10, 0.85, 0.92),  # cyan
    (0.15, 0.25, 0.95),  # blue
    (0.60, 0.15, 0.90),  # violet
    (0.95, 0.15, 0.75),  # magenta
)
_WATER = (0.20, 0.40, 0.62)
_SAND = (0.80, 0.68, 0.46)
_EYE = (0.04, 0.04, 0.05)


def _range(value: Any, name: str) -> tuple[float, float]:
    low, high = (float(v) for v in value)
    if not low <= high:
        raise ValueError(f"BeetlesConfig.{name} must be a (low, high) pair with low <= high, got {value!r}")
    return low, high


@dataclass(frozen=True)
class BeetlesConfig:
    """Every parameter of the beetles generator (chapter 01). Lengths in pixels of a 64-px image.

    ``pattern_contrast`` is the teaching dial: the texture's amplitude, in [0, 1] intensity units:
    light parts of the body are ``+contrast`` and dark parts ``-contrast`` around the body colour
    (0 / 0.06 / 0.09 / 0.12 in the book). At 0 only the head names the class.
    ``context_p`` is the probability that an image gets its class's context background ("water" for
    the first half of the classes, "sand" for the rest) instead of the plain one: the
    attention-misdirection lesson.
    """

    image_size: int = 64
    num_classes: int = 8
    pattern_contrast: float = 0.09
    context_p: float = 0.0
    # background: 4x4 colour field upsampled bicubically, 12x12 noise layer, clutter, pixel noise
    background_level: float = 0.5
    background_spread: float = 0.175
    background_grid: int = 4
    noise_grid: int = 12
    noise_amplitude: float = 0.075
    clutter_count: tuple[int, int] = (6, 11)
    clutter_size: tuple[float, float] = (2.0, 6.0)
    pixel_noise: float = 0.03
    # body: rotated ellipse with 4 legs and a tail, brownish with jitter, textured by class mod 4
    body_half_length: tuple[float, float] = (13.0, 19.0)
    body_half_width: tuple[float, float] = (7.0, 10.0)
    body_colour: tuple[float, float, float] = (0.45, 0.32, 0.20)
    body_colour_jitter: float = 0.05
    pattern_period: tuple[float, float] = (4.0, 6.0)
    leg_length: tuple[float, float] = (4.0, 8.0)
    leg_width: float = 2.5
    tail_length: tuple[float, float] = (5.0, 10.0)
    tail_width: float = 3.0
    # head: class-coloured disc at the front with a dark eye
    head_radius: tuple[float, float] = (4.0, 5.5)
    head_offset: float = 0.7
    eye_radius: float = 1.3

    def __post_init__(self) -> None:
        if not (isinstance(self.image_size, int) and self.image_size >= 16):
            raise ValueError(f"BeetlesConfig.image_size must be an int >= 16, got {self.image_size!r}")
        if not (isinstance(self.num_classes, int) and 2 <= self.num_classes <= 64):
            raise ValueError(f"BeetlesConfig.num_classes must be an int in [2, 64], got {self.num_classes!r}")
        for name in ("pattern_contrast", "context_p", "background_level", "background_spread",
                     "noise_amplitude", "pixel_noise", "body_colour_jitter"):
            value = float(getattr(self, name))
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"BeetlesConfig.{name} must be in [0, 1], got {value!r}")
            object.__setattr__(self, name, value)
        for name in ("background_grid", "noise_grid"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"BeetlesConfig.{name} must be >= 1, got {getattr(self, name)!r}")
        count = tuple(int(v) for v in self.clutter_count)
        if len(count) != 2 or not 0 <= count[0] <= count[1]:
            raise ValueError(
                f"BeetlesConfig.clutter_count must be (low, high) with 0 <= low <= high, got {self.clutter_count!r}"
            )
        object.__setattr__(self, "clutter_count", count)
        for name in ("clutter_size", "body_half_length", "body_half_width", "pattern_period",
                     "leg_length", "tail_length", "head_radius"):
            object.__setattr__(self, name, _range(getattr(self, name), name))
        if self.body_half_width[1] > self.body_half_length[0]:
            raise ValueError(
                "BeetlesConfig.body_half_width must stay below body_half_length (the body is an elongated ellipse)"
            )
        if self.pattern_period[0] < 1.0:
            raise ValueError(f"BeetlesConfig.pattern_period must be >= 1 pixel, got {self.pattern_period!r}")
        colour = tuple(float(c) for c in self.body_colour)
        if len(colour) != 3 or not all(0.0 <= c <= 1.0 for c in colour):
            raise ValueError(f"BeetlesConfig.body_colour must be 3 values in [0, 1], got {self.body_colour!r}")
        object.__setattr__(self, "body_colour", colour)

    @property
    def scale(self) -> float:
        """Factor applied to every length (they are given for a 64-pixel image)."""
        return self.image_size / _REFERENCE_SIZE

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready parameters (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> BeetlesConfig:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


@dataclass
class BeetlesArrays:
    """One generated split, as numpy arrays.

    images (N, H, W, 3) uint8; labels (N,) int64; masks and head_masks (N, H, W) bool (the object
    mask holds body, legs, tail and head); boxes (N, 4) int64, the object's box as *inclusive*
    pixel coordinates x0, y0, x1, y1 (the metrics' convention); backgrounds (N,) int8, an index
    into ``BACKGROUNDS``.
    """

    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    head_masks: np.ndarray
    boxes: np.ndarray
    backgrounds: np.ndarray

    FIELDS = ("images", "labels", "masks", "head_masks", "boxes", "backgrounds")

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: Any) -> BeetlesArrays:
        """A subset (slice, index array or boolean mask) as another ``BeetlesArrays``."""
        if isinstance(index, (int, np.integer)):
            index = slice(int(index), int(index) + 1)
        return BeetlesArrays(*(getattr(self, f)[index] for f in self.FIELDS))

    def edge_boxes(self) -> np.ndarray:
        """Boxes (N, 4) float32 in pixel-edge XYXY (the datasets' convention): x1 + 1, y1 + 1."""
        return (self.boxes + np.array([0, 0, 1, 1])).astype(np.float32)

    def content_hash(self) -> str:
        """sha256 over every array (name, dtype, shape, bytes): equal hashes mean identical content."""
        digest = hashlib.sha256()
        for name in self.FIELDS:
            array = np.ascontiguousarray(getattr(self, name))
            digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
            digest.update(array.tobytes())
        return digest.hexdigest()

    def summary(self) -> dict[str, float]:
        """Mean shares: object mask / image, box / image, head / object mask (aimed at ~0.15, ~0.37, ~0.12)."""
        pixels = self.masks.shape[1] * self.masks.shape[2]
        mask_area = self.masks.sum(axis=(1, 2)).astype(np.float64)
        head_area = self.head_masks.sum(axis=(1, 2)).astype(np.float64)
        box_area = (self.boxes[:, 2] - self.boxes[:, 0] + 1) * (self.boxes[:, 3] - self.boxes[:, 1] + 1)
        return {
            "images": float(len(self)),
            "object_share": float(np.mean(mask_area / pixels)),
            "box_share": float(np.mean(box_area / pixels)),
            "head_share_of_mask": float(np.mean(head_area / np.maximum(mask_area, 1))),
            "context_share": float(np.mean(self.backgrounds > 0)),
        }


def format_summary(arrays: BeetlesArrays, name: str = "beetles") -> str:
    """One line for notebooks: the shares ``BeetlesArrays.summary`` measures, in percent."""
    s = arrays.summary()
    return (
        f"{name}: {int(s['images'])} images | object mask {100 * s['object_share']:.1f}% of the image | "
        f"box {100 * s['box_share']:.1f}% of the image | head {100 * s['head_share_of_mask']:.1f}% of the mask"
    )


def head_colours(num_classes: int) -> np.ndarray:
    """(K, 3) float RGB head colour per class: 8 fixed saturated colours, evenly spaced hues beyond."""
    if num_classes <= len(_HEAD_COLOURS):
        return np.array(_HEAD_COLOURS[:num_classes], dtype=np.float32)
    import colorsys

    return np.array([colorsys.hsv_to_rgb(k / num_classes, 0.85, 0.95) for k in range(num_classes)], dtype=np.float32)


def split_seed(base_seed: int, split: str) -> int:
    """The seed of one split, derived from the base seed: splits never share images."""
    _check_split(split)
    return int(np.random.SeedSequence([int(base_seed), _SPLIT_CODES[split]]).generate_state(1)[0])


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown beetles split {split!r}: expected one of {', '.join(SPLITS)}")


# ---------------------------------------------------------------------------------------------
# Drawing one image
# ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=16)
def _cubic_upsampling(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix of bicubic interpolation weights (Keys a = -0.5, half-pixel centres, clamped edges)."""
    def kernel(t: np.ndarray) -> np.ndarray:
        t = np.abs(t)
        return np.where(t <= 1, 1.5 * t**3 - 2.5 * t**2 + 1,
                        np.where(t < 2, -0.5 * t**3 + 2.5 * t**2 - 4 * t + 2, 0.0))

    source = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
    taps = np.floor(source)[:, None] + np.arange(-1, 3)[None, :]
    weights = kernel(source[:, None] - taps)
    matrix = np.zeros((n_out, n_in))
    np.add.at(matrix, (np.repeat(np.arange(n_out), 4), np.clip(taps, 0, n_in - 1).astype(int).ravel()), weights.ravel())
    return matrix.astype(np.float32)


def _upsample(grid: np.ndarray, size: int) -> np.ndarray:
    """(g, g, 3) -> (size, size, 3), bicubic."""
    m = _cubic_upsampling(grid.shape[0], size)
    return np.einsum("hi,ijc,wj->hwc", m, grid.astype(np.float32), m, optimize=True)


def _noise_layer(rng: np.random.Generator, cfg: BeetlesConfig) -> np.ndarray:
    g = cfg.noise_grid
    return _upsample(rng.uniform(-cfg.noise_amplitude, cfg.noise_amplitude, (g, g, 3)), cfg.image_size)


def _plain_background(rng: np.random.Generator, cfg: BeetlesConfig) -> np.ndarray:
    g = cfg.background_grid
    low, high = cfg.background_level - cfg.background_spread, cfg.background_level + cfg.background_spread
    return _upsample(rng.uniform(low, high, (g, g, 3)), cfg.image_size)


def _context_background(
    rng: np.random.Generator, cfg: BeetlesConfig, kind: str, xx: np.ndarray, yy: np.ndarray
) -> np.ndarray:
    base = np.array(_WATER if kind == "water" else _SAND, dtype=np.float32) + rng.uniform(-0.04, 0.04, 3)
    if kind == "water":
        angle = rng.uniform(0, np.pi)
        wavelength = rng.uniform(6, 10) * cfg.scale
        along = xx * np.cos(angle) + yy * np.sin(angle)
        waves = 0.06 * np.sin(2 * np.pi * along / wavelength + rng.uniform(0, 2 * np.pi))
        return base + waves[..., None].astype(np.float32)
    grain = rng.normal(0, 0.05, xx.shape).astype(np.float32)
    return base + grain[..., None]


def _draw_clutter(
    rng: np.random.Generator, cfg: BeetlesConfig, image: np.ndarray, xx: np.ndarray, yy: np.ndarray
) -> None:
    """Muted discs, rectangles and thin bars, drawn in place inside a small window each."""
    size = cfg.image_size
    low, high = cfg.background_level - cfg.background_spread, cfg.background_level + cfg.background_spread
    for _ in range(rng.integers(cfg.clutter_count[0], cfg.clutter_count[1] + 1)):
        kind = rng.integers(3)
        extent = rng.uniform(*cfg.clutter_size) * cfg.scale
        cx, cy = rng.uniform(0, size, 2)
        colour = rng.uniform(low, high, 3).astype(np.float32)
        angle = rng.uniform(0, np.pi)
        reach = int(np.ceil(extent * 1.6)) + 1
        x0, x1 = max(int(cx) - reach, 0), min(int(cx) + reach + 1, size)
        y0, y1 = max(int(cy) - reach, 0), min(int(cy) + reach + 1, size)
        dx, dy = xx[y0:y1, x0:x1] - cx, yy[y0:y1, x0:x1] - cy
        if kind == 0:  # disc of radius `extent`
            inside = dx**2 + dy**2 <= extent**2
        else:
            u = dx * np.cos(angle) + dy * np.sin(angle)
            v = -dx * np.sin(angle) + dy * np.cos(angle)
            if kind == 1:  # rectangle, half-sides extent x (0.5-1) extent
                inside = (np.abs(u) <= extent) & (np.abs(v) <= extent * rng.uniform(0.5, 1.0))
            else:  # thin bar of length 2 * extent, 1-2 px wide
                inside = (np.abs(u) <= extent) & (np.abs(v) <= rng.uniform(0.5, 1.0) * cfg.scale)
        image[y0:y1, x0:x1][inside] = colour


def _segment_distance(u: np.ndarray, v: np.ndarray, start: tuple[float, float], end: tuple[float, float]) -> np.ndarray:
    du, dv = end[0] - start[0], end[1] - start[1]
    t = np.clip(((u - start[0]) * du + (v - start[1]) * dv) / (du * du + dv * dv), 0.0, 1.0)
    return np.hypot(u - start[0] - t * du, v - start[1] - t * dv)


def _pattern(rng: np.random.Generator, cfg: BeetlesConfig, kind: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """+-1 texture in the body frame (u along the body, v across): one of ``PATTERNS``."""
    period = rng.uniform(*cfg.pattern_period) * cfg.scale
    phase_u, phase_v = rng.uniform(0, period, 2)
    su, sv = (u + phase_u) / period, (v + phase_v) / period
    if kind == 0:  # cross stripes: light and dark bands across the body
        return np.where(np.sin(2 * np.pi * su) >= 0, 1.0, -1.0)
    if kind == 1:  # lengthwise stripes: bands along the body
        return np.where(np.sin(2 * np.pi * sv) >= 0, 1.0, -1.0)
    if kind == 2:  # checks: a regular chequerboard
        return np.where(np.sin(2 * np.pi * su) * np.sin(2 * np.pi * sv) >= 0, 1.0, -1.0)
    table = rng.choice([-1.0, 1.0], size=(16, 16))  # blocks: random light/dark cells of one period
    return table[np.floor(su).astype(int) % 16, np.floor(sv).astype(int) % 16]


def _body_parts(rng: np.random.Generator, cfg: BeetlesConfig) -> dict[str, Any]:
    """Random geometry of one beetle in its own frame (u forward along the body, v across)."""
    s = cfg.scale
    a = rng.uniform(*cfg.body_half_length) * s
    b = rng.uniform(*cfg.body_half_width) * s
    r = rng.uniform(*cfg.head_radius) * s
    legs = []
    for side in (-1.0, 1.0):
        for front in (-1.0, 1.0):
            u0 = front * 0.45 * a
            v0 = side * b * np.sqrt(1 - 0.45**2) * 0.8
            length = rng.uniform(*cfg.leg_length) * s + 0.2 * b
            slant = front * rng.uniform(0.2, 0.6)
            legs.append(((u0, v0), (u0 + length * np.sin(slant), v0 + side * length * np.cos(slant))))
    tail = rng.uniform(*cfg.tail_length) * s
    return {
        "a": a, "b": b, "r": r, "head": a + cfg.head_offset * r, "legs": legs,
        "tail": ((-a + 1.0 * s, 0.0), (-a - tail, 0.0)), "theta": rng.uniform(0, 2 * np.pi),
    }


def _extent(parts: dict[str, Any], cfg: BeetlesConfig) -> tuple[float, float, float, float]:
    """Bounding box of the beetle around its centre, after rotation: (xmin, xmax, ymin, ymax)."""
    a, b, theta = parts["a"], parts["b"], parts["theta"]
    c, s = np.cos(theta), np.sin(theta)
    ex, ey = np.sqrt((a * c) ** 2 + (b * s) ** 2), np.sqrt((a * s) ** 2 + (b * c) ** 2)
    points = [(parts["head"], 0.0, parts["r"])]
    points += [(*end, cfg.leg_width * cfg.scale / 2) for _, end in parts["legs"]]
    points.append((*parts["tail"][1], cfg.tail_width * cfg.scale / 2))
    xs = [(u * c - v * s, pad) for u, v, pad in points]
    ys = [(u * s + v * c, pad) for u, v, pad in points]
    return (min([-ex] + [x - p for x, p in xs]), max([ex] + [x + p for x, p in xs]),
            min([-ey] + [y - p for y, p in ys]), max([ey] + [y + p for y, p in ys]))


def _place(rng: np.random.Generator, extent: tuple[float, float, float, float], size: int) -> tuple[float, float]:
    """A centre that keeps the whole beetle one pixel inside the image (centred if it cannot fit)."""
    centre = []
    for low, high in ((extent[0], extent[1]), (extent[2], extent[3])):
        lo, hi = 1.0 - low, size - 2.0 - high
        centre.append(rng.uniform(lo, hi) if lo <= hi else (size - 1 - low - high) / 2)
    return centre[0], centre[1]


def _draw_one(seed: int, index: int, cfg: BeetlesConfig, grid: tuple[np.ndarray, np.ndarray]) -> tuple:
    rng = np.random.default_rng([seed, index])
    xx, yy = grid
    label = index % cfg.num_classes
    background = 0
    if cfg.context_p > 0 and rng.random() < cfg.context_p:
        background = 1 if label < cfg.num_classes / 2 else 2
        image = _context_background(rng, cfg, BACKGROUNDS[background], xx, yy)
    else:
        image = _plain_background(rng, cfg)
    image = image + _noise_layer(rng, cfg)
    _draw_clutter(rng, cfg, image, xx, yy)

    parts = _body_parts(rng, cfg)
    cx, cy = _place(rng, _extent(parts, cfg), cfg.image_size)
    c, s = np.cos(parts["theta"]), np.sin(parts["theta"])
    dx, dy = xx - cx, yy - cy
    u, v = dx * c + dy * s, -dx * s + dy * c

    body = (u / parts["a"]) ** 2 + (v / parts["b"]) ** 2 <= 1.0
    limbs = _segment_distance(u, v, *parts["tail"]) <= cfg.tail_width * cfg.scale / 2
    for start, end in parts["legs"]:
        limbs |= _segment_distance(u, v, start, end) <= cfg.leg_width * cfg.scale / 2
    head = (u - parts["head"]) ** 2 + v**2 <= parts["r"] ** 2
    eye = (u - parts["head"] - 0.35 * parts["r"]) ** 2 + v**2 <= (cfg.eye_radius * cfg.scale) ** 2

    jitter = cfg.body_colour_jitter
    colour = np.array(cfg.body_colour, dtype=np.float32) + rng.uniform(-jitter, jitter, 3)
    texture = _pattern(rng, cfg, label % 4, u, v)
    image[limbs] = 0.7 * colour
    image[body] = colour + cfg.pattern_contrast * texture[body][:, None]
    image[head] = head_colours(cfg.num_classes)[label] + rng.uniform(-0.03, 0.03, 3)
    image[head & eye] = _EYE

    image += rng.normal(0.0, cfg.pixel_noise, image.shape)
    pixels = np.rint(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    return pixels, label, body | limbs | head, head, background


def _mask_box(mask: np.ndarray) -> np.ndarray:
    """Inclusive x0, y0, x1, y1 of a non-empty mask."""
    cols, rows = np.flatnonzero(mask.any(axis=0)), np.flatnonzero(mask.any(axis=1))
    return np.array([cols[0], rows[0], cols[-1], rows[-1]], dtype=np.int64)


def generate_beetles(n: int, seed: int, config: BeetlesConfig | None = None, start: int = 0) -> BeetlesArrays:
    """Draw images ``start .. start + n - 1`` of the beetles stream with this seed (deterministic).

    Image ``i`` depends only on ``(seed, i, config)``, never on ``n``; its label is ``i mod num_classes``
    (balanced classes).
    """
    cfg = config or BeetlesConfig()
    if n < 0 or start < 0:
        raise ValueError(f"n and start must be >= 0, got n={n}, start={start}")
    size = cfg.image_size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    out = BeetlesArrays(
        images=np.empty((n, size, size, 3), np.uint8), labels=np.empty(n, np.int64),
        masks=np.empty((n, size, size), bool), head_masks=np.empty((n, size, size), bool),
        boxes=np.empty((n, 4), np.int64), backgrounds=np.empty(n, np.int8),
    )
    for k in range(n):
        image, label, mask, head, background = _draw_one(seed, start + k, cfg, (xx, yy))
        out.images[k], out.labels[k], out.masks[k], out.head_masks[k] = image, label, mask, head
        out.boxes[k], out.backgrounds[k] = _mask_box(mask), background
    return out


# ---------------------------------------------------------------------------------------------
# Cache: data_dir()/beetles/<parameter hash>/{manifest.json, <split>.npz}
# ---------------------------------------------------------------------------------------------


def _parameters(config: BeetlesConfig, base_seed: int) -> dict[str, Any]:
    return {"generator_version": GENERATOR_VERSION, "base_seed": int(base_seed), "config": config.to_dict()}


def beetles_cache_dir(config: BeetlesConfig | None = None, base_seed: int = 0, root: Path | str | None = None) -> Path:
    """Folder of the cached splits for these parameters: ``<root>/beetles/<hash of parameters>``."""
    params = _parameters(config or BeetlesConfig(), base_seed)
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    return Path(root if root is not None else data_dir()) / "beetles" / key


def _read_manifest(folder: Path) -> Any:
    """The parsed ``manifest.json`` (any JSON value: ``_manifest_problem`` checks it), None if unreadable."""
    try:
        return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _entry_problem(split: str, entry: Any) -> str:
    """What is wrong with one split's manifest entry ("" if nothing)."""
    if not isinstance(entry, dict):
        return f"its {split!r} entry is a {type(entry).__name__}, not an object"
    if entry.get("file") != f"{split}.npz":
        return f"its {split!r} entry names the file {entry.get('file')!r}, not {split + '.npz'!r}"
    if not (_is_int(entry.get("seed")) and _is_int(entry.get("size")) and entry["size"] >= 0):
        return (f"its {split!r} entry needs integer seed and size >= 0, "
                f"has {entry.get('seed')!r} and {entry.get('size')!r}")
    if not (isinstance(entry.get("sha256"), str) and re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])):
        return f"its {split!r} entry has no sha256 hex digest"
    return ""


def _manifest_problem(manifest: Any, params: dict[str, Any]) -> str:
    """Why ``manifest`` cannot describe this folder's splits ("" if it can)."""
    if not isinstance(manifest, dict):
        return f"its manifest.json holds a {type(manifest).__name__}, not an object"
    if {k: manifest.get(k) for k in params} != params:
        return "the manifest's parameters differ from the requested ones"
    if not isinstance(manifest.get("splits"), dict):
        return "its manifest.json has no \"splits\" object"
    for split, entry in manifest["splits"].items():
        problem = _entry_problem(split, entry) if split in SPLITS else f"it lists an unknown split {split!r}"
        if problem:
            return f"its manifest.json is malformed: {problem}"
    return ""


def _cached(folder: Path, split: str, params: dict[str, Any], seed: int, size: int) -> tuple[BeetlesArrays | None, str]:
    """The cached split if its manifest entry matches and its content hash checks out.

    Otherwise ``(None, why)``, where ``why`` is empty when there is simply nothing cached yet.
    """
    manifest = _read_manifest(folder)
    if manifest is None:
        stale = (folder / "manifest.json").exists()
        return None, "its manifest.json cannot be read" if stale else ""
    problem = _manifest_problem(manifest, params)
    if problem:
        return None, problem
    entry = manifest["splits"].get(split)
    if entry is None or entry["size"] < size:
        return None, ""
    if entry["seed"] != seed:
        return None, f"the cached {split} split has seed {entry['seed']}, expected {seed}"
    arrays, why = _read_arrays(folder / entry["file"])
    if arrays is None:
        return None, why
    if len(arrays) != entry["size"] or arrays.content_hash() != entry["sha256"]:
        return None, "the cached file's content hash does not match its manifest (corrupted or edited)"
    return arrays[:size], ""


def _read_arrays(path: Path) -> tuple[BeetlesArrays | None, str]:
    """The arrays of a cached ``.npz``, or ``(None, why)`` when it cannot be read."""
    try:
        with open(path, "rb") as handle, np.load(handle) as stored:  # np.load leaks its own handle on a bad zip
            return BeetlesArrays(*(stored[f] for f in BeetlesArrays.FIELDS)), ""
    # A damaged zip fails wherever the damage is (its directory, a header, a CRC, the npy header)
    # with whatever that step raises: BadZipFile, NotImplementedError, ValueError, zlib.error...
    except Exception as error:  # noqa: BLE001
        return None, f"the cached file cannot be read ({error.__class__.__name__}: {error})"


def _store(folder: Path, split: str, params: dict[str, Any], seed: int, arrays: BeetlesArrays) -> None:
    """Write the split's ``.npz``, then add its entry to ``manifest.json`` under a lock on the
    folder, so that processes generating different splits at once keep each other's entries."""
    folder.mkdir(parents=True, exist_ok=True)
    file = f"{split}.npz"
    content = {f: getattr(arrays, f) for f in BeetlesArrays.FIELDS}
    atomic_write(folder / file, lambda stream: np.savez(stream, **content))
    with locked(folder / ".manifest.lock"):
        manifest = _read_manifest(folder)
        if manifest is None or _manifest_problem(manifest, params):
            manifest = {**params, "splits": {}}
        manifest["splits"][split] = {"file": file, "seed": seed, "size": len(arrays), "sha256": arrays.content_hash()}
        atomic_write_json(folder / "manifest.json", manifest)


def load_beetles(
    split: str,
    config: BeetlesConfig | None = None,
    root: Path | str | None = None,
    base_seed: int = 0,
    size: int | None = None,
    verbose: bool = True,
) -> BeetlesArrays:
    """The beetles ``split`` ("train", "val" or "test"), generated on first use and cached.

    The cache lives in ``<root or data_dir()>/beetles/<hash of parameters>/`` with a ``manifest.json``
    (parameters, generator version, seeds, sizes, sha256 of the content). A cached split is used
    only when its manifest matches the requested parameters and its content hash checks out;
    otherwise it is regenerated (with a warning saying why, if a cache was there). ``size``
    defaults to ``SPLIT_SIZES[split]``; a smaller size returns the first images of the same stream.
    """
    _check_split(split)
    cfg = config or BeetlesConfig()
    size = SPLIT_SIZES[split] if size is None else int(size)
    seed = split_seed(base_seed, split)
    params = _parameters(cfg, base_seed)
    folder = beetles_cache_dir(cfg, base_seed, root)
    arrays, reason = _cached(folder, split, params, seed, size)
    if arrays is not None:
        return arrays
    if reason:
        warnings.warn(f"regenerating beetles {split} split in {folder}: {reason}", stacklevel=2)
    began = time.perf_counter()
    arrays = generate_beetles(size, seed, cfg)
    _store(folder, split, params, seed, arrays)
    if verbose:
        print(f"generated beetles {split} split ({size} images) in {time.perf_counter() - began:.1f} s -> {folder}")
    return arrays


# ---------------------------------------------------------------------------------------------
# torch Dataset with torchvision v2 tensors
# ---------------------------------------------------------------------------------------------


class BeetlesDataset(Dataset):
    """Beetles split as a torch ``Dataset`` whose items torchvision v2 transforms can carry.

    Item ``i``: ``(image, target)`` with image a ``tv_tensors.Image`` (3, H, W) uint8 and target
    ``{"label": int, "boxes": BoundingBoxes (1, 4) XYXY pixel-edge, "mask": Mask (H, W),
    "head_mask": Mask (H, W), "image_id": str}``. ``transform(image, target)`` is applied when given
    (see ``beetles_transforms``); use ``collate_wsol`` to batch.
    """

    def __init__(
        self,
        split: str = "train",
        config: BeetlesConfig | None = None,
        transform: Callable | None = None,
        root: Path | str | None = None,
        base_seed: int = 0,
        size: int | None = None,
        arrays: BeetlesArrays | None = None,
    ):
        self.split = split
        self.config = config or BeetlesConfig()
        self.arrays = arrays if arrays is not None else load_beetles(split, self.config, root, base_seed, size)
        self.transform = transform
        self.classes = [f"class {k} ({PATTERNS[k % 4]})" for k in range(self.config.num_classes)]
        self._edge_boxes = torch.from_numpy(self.arrays.edge_boxes())

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, index: int) -> tuple[Any, dict[str, Any]]:
        a = self.arrays
        size = tuple(a.masks.shape[1:])
        image = tv_tensors.Image(torch.from_numpy(a.images[index]).permute(2, 0, 1))
        target = {
            "label": int(a.labels[index]),
            "boxes": tv_tensors.BoundingBoxes(self._edge_boxes[index : index + 1], format="XYXY", canvas_size=size),
            "mask": tv_tensors.Mask(torch.from_numpy(a.masks[index])),
            "head_mask": tv_tensors.Mask(torch.from_numpy(a.head_masks[index])),
            "image_id": f"{self.split}/{index:05d}",
        }
        if self.transform is not None:
            image, target = self.transform(image, target)
        return image, target

    def extra_repr(self) -> str:
        return f"split={self.split}, images={len(self)}, config={self.config}"

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.extra_repr()})"
