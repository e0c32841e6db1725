"""Augmentations against hand-worked arrays and against Pillow, which the reference code used."""

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from bsnn_jax.data import augment
from bsnn_jax.data import autoaugment as aa

# 4x4 single-channel image whose pixel values are their row-major index.
IMG = np.arange(16, dtype=np.uint8).reshape(4, 4, 1)


def test_random_crop_pads_with_zeros_then_crops(scripted_rng):
    # Padding 1 gives a 6x6 image; top=0, left=2 keeps padded rows 0..3, columns 2..5.
    out = augment.random_crop(IMG, scripted_rng(0, 2), size=4, padding=1)
    expected = [
        [0, 0, 0, 0],
        [1, 2, 3, 0],
        [5, 6, 7, 0],
        [9, 10, 11, 0],
    ]
    np.testing.assert_array_equal(out[..., 0], expected)


def test_random_crop_offsets_span_0_to_2_padding():
    image = np.arange(1, 32 * 32 + 1, dtype=np.int32).reshape(32, 32, 1)
    rng = np.random.default_rng(0)
    offsets = set()
    for _ in range(1000):
        crop = augment.random_crop(image, rng, size=32, padding=4)
        # Pixel (16, 16) sits at padded (20, 20), so in the crop at (20 - top, 20 - left).
        ((row, col),) = np.argwhere(crop[..., 0] == image[16, 16, 0])
        offsets.add((20 - row, 20 - col))
    assert offsets == {(top, left) for top in range(9) for left in range(9)}  # torchvision's range


def test_random_hflip(scripted_rng):
    np.testing.assert_array_equal(augment.random_hflip(IMG, scripted_rng(0.3))[0, :, 0], [3, 2, 1, 0])
    np.testing.assert_array_equal(augment.random_hflip(IMG, scripted_rng(0.7)), IMG)


def test_cutout_hole_is_clipped_at_the_border(scripted_rng):
    # Centre (y=1, x=4), length 4: rows max(1-2,0)..min(1+2,6) = 0..2, columns 2..5.
    out = augment.cutout(np.ones((6, 6, 3), np.uint8), scripted_rng(1, 4), length=4)
    expected = np.ones((6, 6), np.uint8)
    expected[0:3, 2:6] = 0
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], expected)


def test_random_roll_wraps_around_on_every_frame(scripted_rng):
    frames = np.stack([IMG, IMG + 100])  # [T=2, 4, 4, 1]
    out = augment.random_roll(frames, scripted_rng(1, -1), max_shift=5)  # dy=1, dx=-1
    expected = [
        [13, 14, 15, 12],
        [1, 2, 3, 0],
        [5, 6, 7, 4],
        [9, 10, 11, 8],
    ]
    np.testing.assert_array_equal(out[0, ..., 0], expected)
    np.testing.assert_array_equal(out[1, ..., 0], np.array(expected) + 100)


def test_resample_matrix_by_hand():
    # 4 -> 2 bilinear: scale 2 widens the triangle to support 2; output 0 is centred at 1.0, so
    # input pixels 0, 1, 2 (centres .5, 1.5, 2.5) weigh 1 - |x + .5 - 1| / 2 = .75, .75, .25.
    np.testing.assert_allclose(augment.resample_matrix(4, 2)[0], np.array([3, 3, 1, 0]) / 7)
    np.testing.assert_allclose(augment.resample_matrix(3, 3), np.eye(3))


@pytest.mark.parametrize("shape, size", [((128, 128), (48, 48)), ((37, 50), (20, 64)), ((9, 9), (4, 7))])
def test_resize_matches_pillow(shape, size):
    rng = np.random.default_rng(0)
    gray = rng.random(shape).astype(np.float32) * 7
    ours = augment.resize(gray[..., None], size)[..., 0]
    theirs = np.asarray(Image.fromarray(gray, mode="F").resize(size[::-1], Image.BILINEAR))
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    rgb = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    diff = augment.resize(rgb, size).astype(int) - np.asarray(Image.fromarray(rgb).resize(size[::-1], Image.BILINEAR))
    assert np.abs(diff).max() <= 1  # Pillow rounds after each of its two passes


def test_random_resized_crop_by_hand(scripted_rng):
    image = np.arange(100, dtype=np.uint8).reshape(10, 10, 1)
    # area 100 * 0.36 = 36 at aspect exp(0) = 1 -> a 6x6 crop at (top 2, left 1), resized to 6: unchanged.
    out = augment.random_resized_crop(image, scripted_rng(0.36, 0.0, 2, 1), size=6)
    np.testing.assert_array_equal(out, image[2:8, 1:7])


def test_resize_center_crop_matches_pillow():
    image = np.random.default_rng(0).integers(0, 256, (30, 45, 3), dtype=np.uint8)
    out = augment.resize_center_crop(image, resize_to=16, crop=12)
    # torchvision: shorter side 30 -> 16, longer 45 -> int(16 * 45 / 30) = 24; centre crop 12.
    resized = np.asarray(Image.fromarray(image).resize((24, 16), Image.BILINEAR))
    assert out.shape == (12, 12, 3)
    assert np.abs(out.astype(int) - resized[2:14, 6:18]).max() <= 1


def _pil(img):
    return Image.fromarray(img)


def _rotate_with_fill(img, degrees):  # the reference code's rotate
    rotated = img.convert("RGBA").rotate(degrees)
    return Image.composite(rotated, Image.new("RGBA", rotated.size, (128,) * 4), rotated).convert(img.mode)


FILL = (128, 128, 128)
PIL_OPS = {
    "color": (lambda x: aa.color(x, 1.63), lambda p: ImageEnhance.Color(p).enhance(1.63)),
    "contrast": (lambda x: aa.contrast(x, 0.3), lambda p: ImageEnhance.Contrast(p).enhance(0.3)),
    "brightness": (lambda x: aa.brightness(x, 1.7), lambda p: ImageEnhance.Brightness(p).enhance(1.7)),
    "sharpness": (lambda x: aa.sharpness(x, 1.8), lambda p: ImageEnhance.Sharpness(p).enhance(1.8)),
    "posterize": (lambda x: aa.posterize(x, 5), lambda p: ImageOps.posterize(p, 5)),
    "solarize": (lambda x: aa.solarize(x, 113.7), lambda p: ImageOps.solarize(p, 113.7)),
    "autocontrast": (
        lambda x: aa.autocontrast(x // 2 + 20),  # a low-contrast input, so there is work to do
        lambda p: ImageOps.autocontrast(_pil(np.asarray(p) // 2 + 20)),
    ),
    "equalize": (aa.equalize, ImageOps.equalize),
    "invert": (aa.invert, ImageOps.invert),
    "translateX": (
        lambda x: aa.affine(x, (1, 0, 14.5, 0, 1, 0), cubic=False),
        lambda p: p.transform(p.size, Image.AFFINE, (1, 0, 14.5, 0, 1, 0), fillcolor=FILL),
    ),
    "translateY": (
        lambda x: aa.affine(x, (1, 0, 0, 0, 1, -9.3), cubic=False),
        lambda p: p.transform(p.size, Image.AFFINE, (1, 0, 0, 0, 1, -9.3), fillcolor=FILL),
    ),
    "shearX": (
        lambda x: aa.affine(x, (1, 0.2333, 0, 0, 1, 0), cubic=True),
        lambda p: p.transform(p.size, Image.AFFINE, (1, 0.2333, 0, 0, 1, 0), Image.BICUBIC, fillcolor=FILL),
    ),
    "shearY": (
        lambda x: aa.affine(x, (1, 0, 0, -0.3, 1, 0), cubic=True),
        lambda p: p.transform(p.size, Image.AFFINE, (1, 0, 0, -0.3, 1, 0), Image.BICUBIC, fillcolor=FILL),
    ),
    "rotate": (lambda x: aa.rotate(x, 23.3), lambda p: _rotate_with_fill(p, 23.3)),
}


@pytest.mark.parametrize("op", sorted(PIL_OPS))
def test_autoaugment_ops_match_pillow(op):
    ours, theirs = PIL_OPS[op]
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    ramp = (np.add.outer(np.arange(32), np.arange(32))[..., None] * np.array([3, 5, 7]) % 256).astype(np.uint8)
    for image in (noise, ramp):
        np.testing.assert_array_equal(ours(image), np.asarray(theirs(_pil(image))))


def test_posterize_and_solarize_by_hand():
    x = np.array([[[0, 100, 255]]], np.uint8)
    np.testing.assert_array_equal(aa.posterize(x, 4), [[[0, 96, 240]]])  # keep the top 4 bits
    np.testing.assert_array_equal(aa.solarize(x, 100), [[[0, 155, 0]]])  # invert values >= 100


def test_cifar10_policy_is_a_function_of_the_generator():
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    outs = [aa.cifar10_policy(image, np.random.default_rng(seed)) for seed in range(40)]
    again = [aa.cifar10_policy(image, np.random.default_rng(seed)) for seed in range(40)]
    assert all(o.shape == image.shape and o.dtype == np.uint8 for o in outs)
    assert all(np.array_equal(a, b) for a, b in zip(outs, again, strict=True))
    assert sum(not np.array_equal(o, image) for o in outs) > 20
