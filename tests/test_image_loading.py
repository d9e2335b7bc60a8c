"""The image loader of the real datasets: every bit depth ends as 8-bit RGB on the right scale."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from dgdm_lib.data.errors import ImageReadError
from dgdm_lib.data.files import load_image

LEVELS = np.array([[0, 257, 32896, 65535], [1000, 20000, 40000, 65280]], dtype=np.uint16)


def _png_rgb16(path, pixels: np.ndarray) -> None:
    """A 48-bit RGB PNG (Pillow reads these but cannot write them)."""
    height, width, _ = pixels.shape
    rows = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
                     + chunk(b"IEND", b""))


def test_a_16_bit_greyscale_png_is_scaled_to_8_bits_not_clipped(tmp_path) -> None:
    path = tmp_path / "grey16.png"
    Image.fromarray(LEVELS).save(path)
    assert Image.open(path).mode == "I;16"
    image = load_image(path, "grey16")
    assert image.shape == (3, 2, 4) and str(image.dtype) == "torch.uint8"
    expected = np.round(LEVELS / 257).astype(np.uint8)
    for channel in image.numpy():
        np.testing.assert_array_equal(channel, expected)


def test_a_16_bit_rgb_png_keeps_its_colours(tmp_path) -> None:
    pixels = np.stack([LEVELS, LEVELS[:, ::-1], np.full_like(LEVELS, 30000)], axis=-1)
    path = tmp_path / "rgb16.png"
    _png_rgb16(path, pixels)
    image = load_image(path, "rgb16").numpy().transpose(1, 2, 0).astype(int)
    assert np.abs(image - pixels / 257).max() <= 1


def test_a_32_bit_integer_image_within_16_bits_is_scaled_and_beyond_is_refused(tmp_path) -> None:
    path = tmp_path / "wide.tif"
    Image.fromarray(LEVELS.astype(np.int32)).save(path)
    assert Image.open(path).mode == "I"
    np.testing.assert_array_equal(load_image(path, "wide")[0].numpy(), np.round(LEVELS / 257))
    Image.fromarray(np.array([[0, 70000]], dtype=np.int32)).save(path)
    with pytest.raises(ImageReadError, match=r"wide at .*wide\.tif.*0\.\.70000.*16 bits"):
        load_image(path, "wide")


def test_an_8_bit_png_is_read_unchanged(tmp_path) -> None:
    pixels = np.arange(2 * 4 * 3, dtype=np.uint8).reshape(2, 4, 3) * 10
    path = tmp_path / "rgb8.png"
    Image.fromarray(pixels).save(path)
    np.testing.assert_array_equal(load_image(path, "rgb8").numpy().transpose(1, 2, 0), pixels)
