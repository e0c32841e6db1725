"""AutoAugment's CIFAR-10 policy (Cubuk et al. 2019) on uint8 ``[H, W, 3]`` numpy images.

Port of the ``CIFAR10Policy`` that Q-SNN and BSO import (DeepVoltaire/AutoAugment, built on
PIL), with the record's generator in place of Python's ``random``. Each op reproduces the PIL
call it replaces: the same lookup tables, the same ``Image.blend`` arithmetic (truncating),
the same ``L`` grayscale weights, the same pixel-centre sampling and fill colour (128) for
the geometric ops. Shear samples with the a = -1 cubic that PIL's ``BICUBIC`` affine uses.
"""

from __future__ import annotations

import numpy as np

FILL = 128

# Magnitude of each op at levels 0..9 (the reference's ``ranges``).
_LEVELS = {
    "shearX": np.linspace(0, 0.3, 10),
    "shearY": np.linspace(0, 0.3, 10),
    "translateX": np.linspace(0, 150 / 331, 10),
    "translateY": np.linspace(0, 150 / 331, 10),
    "rotate": np.linspace(0, 30, 10),
    "color": np.linspace(0.0, 0.9, 10),
    "posterize": np.round(np.linspace(8, 4, 10), 0).astype(int),
    "solarize": np.linspace(256, 0, 10),
    "contrast": np.linspace(0.0, 0.9, 10),
    "sharpness": np.linspace(0.0, 0.9, 10),
    "brightness": np.linspace(0.0, 0.9, 10),
    "autocontrast": np.zeros(10),
    "equalize": np.zeros(10),
    "invert": np.zeros(10),
}

# (p1, op1, level1, p2, op2, level2): the 25 sub-policies found on reduced CIFAR-10.
CIFAR10_POLICY = (
    (0.1, "invert", 7, 0.2, "contrast", 6),
    (0.7, "rotate", 2, 0.3, "translateX", 9),
    (0.8, "sharpness", 1, 0.9, "sharpness", 3),
    (0.5, "shearY", 8, 0.7, "translateY", 9),
    (0.5, "autocontrast", 8, 0.9, "equalize", 2),
    (0.2, "shearY", 7, 0.3, "posterize", 7),
    (0.4, "color", 3, 0.6, "brightness", 7),
    (0.3, "sharpness", 9, 0.7, "brightness", 9),
    (0.6, "equalize", 5, 0.5, "equalize", 1),
    (0.6, "contrast", 7, 0.6, "sharpness", 5),
    (0.7, "color", 7, 0.5, "translateX", 8),
    (0.3, "equalize", 7, 0.4, "autocontrast", 8),
    (0.4, "translateY", 3, 0.2, "sharpness", 6),
    (0.9, "brightness", 6, 0.2, "color", 8),
    (0.5, "solarize", 2, 0.0, "invert", 3),
    (0.2, "equalize", 0, 0.6, "autocontrast", 0),
    (0.2, "equalize", 8, 0.8, "equalize", 4),
    (0.9, "color", 9, 0.6, "equalize", 6),
    (0.8, "autocontrast", 4, 0.2, "solarize", 8),
    (0.1, "brightness", 3, 0.7, "color", 0),
    (0.4, "solarize", 5, 0.9, "autocontrast", 3),
    (0.9, "translateY", 9, 0.7, "translateY", 9),
    (0.9, "autocontrast", 2, 0.8, "solarize", 3),
    (0.8, "equalize", 8, 0.1, "invert", 3),
    (0.7, "translateY", 9, 0.9, "autocontrast", 1),
)


def grayscale(img: np.ndarray) -> np.ndarray:
    """PIL's RGB -> L conversion (ITU-R 601-2 luma in 16-bit fixed point), ``[H, W]`` uint8."""
    rgb = img.astype(np.uint32)
    return ((rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16).astype(np.uint8)


def blend(degenerate: np.ndarray, img: np.ndarray, factor: float) -> np.ndarray:
    """``Image.blend(degenerate, img, factor)``: float32 interpolation, clipped, truncated."""
    base = degenerate.astype(np.float32)
    out = base + np.float32(factor) * (img.astype(np.float32) - base)
    return np.clip(out, 0, 255).astype(np.uint8)


def color(img: np.ndarray, factor: float) -> np.ndarray:
    """``ImageEnhance.Color``: blend with the image's grayscale version."""
    return blend(np.repeat(grayscale(img)[..., None], 3, axis=-1), img, factor)


def contrast(img: np.ndarray, factor: float) -> np.ndarray:
    """``ImageEnhance.Contrast``: blend with a flat image at the mean gray level (rounded)."""
    mean = int(grayscale(img).mean() + 0.5)
    return blend(np.full_like(img, mean), img, factor)


def brightness(img: np.ndarray, factor: float) -> np.ndarray:
    """``ImageEnhance.Brightness``: blend with black."""
    return blend(np.zeros_like(img), img, factor)


def sharpness(img: np.ndarray, factor: float) -> np.ndarray:
    """``ImageEnhance.Sharpness``: blend with ``ImageFilter.SMOOTH`` (3x3, centre 5, total 13).

    PIL leaves the one-pixel border of the smoothed image unfiltered.
    """
    x = img.astype(np.float32)
    kernel_sum = (
        x[:-2, :-2] + x[:-2, 1:-1] + x[:-2, 2:] + x[1:-1, :-2] + 5 * x[1:-1, 1:-1] + x[1:-1, 2:] + x[2:, :-2] + x[2:, 1:-1] + x[2:, 2:]
    )
    smooth = img.copy()
    smooth[1:-1, 1:-1] = np.clip(np.floor(kernel_sum / 13 + 0.5), 0, 255).astype(np.uint8)
    return blend(smooth, img, factor)


def posterize(img: np.ndarray, bits: int) -> np.ndarray:
    """``ImageOps.posterize``: keep the top ``bits`` bits of every channel."""
    return img & np.uint8(~(2 ** (8 - bits) - 1) & 0xFF)


def solarize(img: np.ndarray, threshold: float) -> np.ndarray:
    """``ImageOps.solarize``: invert every value at or above ``threshold``."""
    return np.where(img < threshold, img, 255 - img).astype(np.uint8)


def invert(img: np.ndarray) -> np.ndarray:
    """``ImageOps.invert``."""
    return 255 - img


def _apply_lut(img: np.ndarray, luts: np.ndarray) -> np.ndarray:
    """Maps channel ``c`` of ``img`` through ``luts[c]`` (``[C, 256]``)."""
    return np.take_along_axis(luts.T, img.reshape(-1, img.shape[-1]).astype(np.intp), axis=0).reshape(img.shape)


def autocontrast(img: np.ndarray) -> np.ndarray:
    """``ImageOps.autocontrast()`` (no cutoff): stretch each channel's [min, max] to [0, 255]."""
    ramp = np.arange(256, dtype=np.float64)
    luts = []
    for c in range(img.shape[-1]):
        lo, hi = int(img[..., c].min()), int(img[..., c].max())
        if hi <= lo:
            luts.append(ramp.astype(np.uint8))
            continue
        scale = 255.0 / (hi - lo)
        luts.append(np.clip(np.trunc(ramp * scale - lo * scale), 0, 255).astype(np.uint8))
    return _apply_lut(img, np.stack(luts))


def equalize(img: np.ndarray) -> np.ndarray:
    """``ImageOps.equalize``: per-channel histogram equalisation with PIL's integer steps."""
    luts = []
    for c in range(img.shape[-1]):
        hist = np.bincount(img[..., c].ravel(), minlength=256)
        nonzero = hist[hist > 0]
        step = (nonzero.sum() - nonzero[-1]) // 255 if len(nonzero) > 1 else 0
        if step == 0:
            luts.append(np.arange(256, dtype=np.uint8))
            continue
        # PIL: lut[i] = n // step, with n starting at step // 2 and growing by hist[i] after use.
        n = step // 2 + np.concatenate([[0], np.cumsum(hist)[:-1]])
        luts.append(np.minimum(n // step, 255).astype(np.uint8))
    return _apply_lut(img, np.stack(luts))


def _cubic_weights(frac: np.ndarray) -> np.ndarray:
    """Weights of taps -1, 0, 1, 2 for PIL's affine ``BICUBIC`` (the a = -1 cubic)."""
    d = frac[..., None]
    # PIL evaluates v2 + d*(-v1 + v3 + d*(2(v1 - v2) + v3 - v4 + d*(-v1 + v2 - v3 + v4))).
    w_m1 = -d + 2 * d**2 - d**3
    w_0 = 1 - 2 * d**2 + d**3
    w_1 = d + d**2 - d**3
    w_2 = -(d**2) + d**3
    return np.concatenate([w_m1, w_0, w_1, w_2], axis=-1)


def affine(img: np.ndarray, matrix: tuple[float, ...], *, cubic: bool) -> np.ndarray:
    """``img.transform(size, Image.AFFINE, matrix, NEAREST or BICUBIC, fillcolor=128)``.

    Output pixel ``(x, y)`` samples the input at ``(a x' + b y' + c, d x' + e y' + f)``, with
    ``x' = x + 0.5`` (pixel centres); samples outside the image take the fill colour.
    """
    height, width = img.shape[:2]
    a, b, c, d, e, f = matrix
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    sx = a * xs + b * ys + c
    sy = d * xs + e * ys + f
    inside = (sx >= 0) & (sx < width) & (sy >= 0) & (sy < height)
    if cubic:
        sx, sy = sx - 0.5, sy - 0.5
        x0, y0 = np.floor(sx), np.floor(sy)
        wx, wy = _cubic_weights(sx - x0), _cubic_weights(sy - y0)
        taps = np.arange(-1, 3)
        ix = np.clip(x0[..., None].astype(int) + taps, 0, width - 1)
        iy = np.clip(y0[..., None].astype(int) + taps, 0, height - 1)
        # [H, W, 4 (y taps), 4 (x taps), C] neighbourhood, weighted and summed.
        patch = img[iy[..., :, None], ix[..., None, :]].astype(np.float64)
        value = np.einsum("hwj,hwk,hwjkc->hwc", wy, wx, patch)
        out = np.clip(value, 0, 255).astype(np.uint8)
    else:
        ix = np.clip(np.floor(sx).astype(int), 0, width - 1)
        iy = np.clip(np.floor(sy).astype(int), 0, height - 1)
        out = img[iy, ix]
    return np.where(inside[..., None], out, np.uint8(FILL))


def rotate(img: np.ndarray, degrees: float) -> np.ndarray:
    """``Image.rotate(degrees)`` (counter-clockwise, NEAREST) with the outside filled with 128."""
    height, width = img.shape[:2]
    angle = -np.deg2rad(degrees)
    a, b = round(np.cos(angle), 15), round(np.sin(angle), 15)
    d, e = -b, a
    cx, cy = width / 2.0, height / 2.0
    # Same construction as PIL: rotate about the centre, then translate back.
    c = a * -cx + b * -cy + cx
    f = d * -cx + e * -cy + cy
    return affine(img, (a, b, c, d, e, f), cubic=False)


def apply_op(img: np.ndarray, op: str, magnitude: float, rng: np.random.Generator) -> np.ndarray:
    """One AutoAugment op; ops with a direction draw its sign from ``rng``, as the reference does."""
    height, width = img.shape[:2]
    if op in ("shearX", "shearY", "translateX", "translateY", "color", "contrast", "sharpness", "brightness"):
        magnitude = magnitude * (1 if rng.random() < 0.5 else -1)
    if op == "shearX":
        return affine(img, (1, magnitude, 0, 0, 1, 0), cubic=True)
    if op == "shearY":
        return affine(img, (1, 0, 0, magnitude, 1, 0), cubic=True)
    if op == "translateX":
        return affine(img, (1, 0, magnitude * width, 0, 1, 0), cubic=False)
    if op == "translateY":
        return affine(img, (1, 0, 0, 0, 1, magnitude * height), cubic=False)
    if op == "rotate":
        return rotate(img, magnitude)
    if op == "color":
        return color(img, 1 + magnitude)
    if op == "contrast":
        return contrast(img, 1 + magnitude)
    if op == "sharpness":
        return sharpness(img, 1 + magnitude)
    if op == "brightness":
        return brightness(img, 1 + magnitude)
    if op == "posterize":
        return posterize(img, int(magnitude))
    if op == "solarize":
        return solarize(img, magnitude)
    if op == "autocontrast":
        return autocontrast(img)
    if op == "equalize":
        return equalize(img)
    if op == "invert":
        return invert(img)
    raise ValueError(f"unknown AutoAugment op {op!r}")


def cifar10_policy(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Picks one of the 25 sub-policies uniformly and applies each of its two ops with its probability."""
    p1, op1, level1, p2, op2, level2 = CIFAR10_POLICY[int(rng.integers(len(CIFAR10_POLICY)))]
    if rng.random() < p1:
        img = apply_op(img, op1, _LEVELS[op1][level1], rng)
    if rng.random() < p2:
        img = apply_op(img, op2, _LEVELS[op2][level2], rng)
    return img
