"""Preprocessing against independent, straightforward implementations, and its geometry on odd images."""

from __future__ import annotations

import io

import numpy as np
import pytest

from flowgraph.nodes.preprocess import MLPERF_MEANS, decode, preprocess_image


def jpeg(array: np.ndarray, mode: str | None = None, quality: int = 95) -> bytes:
    from PIL import Image

    image = Image.fromarray(array)
    if mode:
        image = image.convert(mode)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def test_mlperf_preprocess_matches_block_average_on_an_exact_2x_downscale():
    # 512x768 → shorter side 256 is an exact 2x2 area average, which numpy computes independently of OpenCV.
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (512, 768, 3), dtype=np.uint8)
    out = preprocess_image(bgr, "mlperf", "NHWC")
    rgb = bgr[..., ::-1].astype(np.float64)
    small = rgb.reshape(256, 2, 384, 2, 3).mean(axis=(1, 3))
    left = (384 - 224) // 2
    top = (256 - 224) // 2
    reference = small[top : top + 224, left : left + 224] - np.asarray(MLPERF_MEANS)
    # OpenCV rounds the averaged pixel to uint8 before the mean is subtracted: at most 0.5 off.
    assert out.shape == (224, 224, 3) and out.dtype == np.float32
    assert np.abs(out - reference).max() <= 0.5 + 1e-4


def test_nchw_is_the_transpose_of_nhwc():
    bgr = np.random.default_rng(1).integers(0, 256, (375, 500, 3), dtype=np.uint8)
    assert np.array_equal(
        preprocess_image(bgr, "mlperf", "NCHW"), preprocess_image(bgr, "mlperf", "NHWC").transpose(2, 0, 1)
    )


def test_torchvision_variant_matches_its_formula():
    import cv2

    bgr = np.random.default_rng(2).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    out = preprocess_image(bgr, "torchvision", "NHWC")
    resized = cv2.resize(bgr[..., ::-1], (341, 256), interpolation=cv2.INTER_LINEAR)  # shorter side 256
    crop = resized[16:240, 58:282].astype(np.float32) / 255
    reference = (crop - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    assert np.abs(out - reference).max() < 1e-5


def test_uint8_variant_is_the_crop_without_normalizing():
    bgr = np.random.default_rng(3).integers(0, 256, (512, 768, 3), dtype=np.uint8)
    out = preprocess_image(bgr, "uint8")
    assert out.dtype == np.uint8 and out.shape == (224, 224, 3)
    as_float = preprocess_image(bgr, "mlperf", "NHWC")
    assert np.abs(out.astype(np.float32) - np.asarray(MLPERF_MEANS, np.float32) - as_float).max() == 0


@pytest.mark.parametrize(("height", "width"), [(500, 300), (7, 10), (3000, 4000), (224, 224), (225, 1000)])
def test_geometry_keeps_the_center_of_odd_sizes(height, width):
    # A white square at the center of a black image must land at the center of the crop.
    r = max(1, min(height, width) // 8)
    yy, xx = np.mgrid[0:height, 0:width]
    square = (np.abs(yy - (height - 1) / 2) <= r) & (
        np.abs(xx - (width - 1) / 2) <= r
    )  # symmetric about the center
    image = np.where(square[..., None], 255, 0).astype(np.uint8).repeat(3, axis=2)
    out = preprocess_image(decode(jpeg(image), "test"), "uint8")
    assert out.shape == (224, 224, 3)
    bright = np.argwhere(out[..., 0] > 128)
    center = bright.mean(axis=0)
    assert np.all(np.abs(center - 111.5) < 4), center


@pytest.mark.parametrize("mode", ["L", "CMYK"])
def test_grayscale_and_cmyk_jpegs_decode_to_three_channels(mode):
    rgb = np.full((300, 400, 3), (200, 100, 50), np.uint8)
    out = preprocess_image(decode(jpeg(rgb, mode), "test"), "uint8")
    assert out.shape == (224, 224, 3)
    if mode == "L":
        assert np.ptp(out.astype(int), axis=2).max() <= 1  # gray stays gray in all three channels
    else:
        assert np.abs(out.reshape(-1, 3).mean(0) - (200, 100, 50)).max() < 12  # colours survive CMYK


def test_undecodable_bytes_name_the_file():
    with pytest.raises(ValueError, match="broken.jpg: not a decodable image"):
        decode(b"\x00\x01nope", "broken.jpg")


def test_a_zero_byte_file_is_named_not_an_opencv_assertion():
    with pytest.raises(ValueError, match="empty.jpg: the file is empty"):
        decode(b"", "empty.jpg")
