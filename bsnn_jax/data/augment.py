"""Per-record augmentations in numpy, matching the torchvision transforms the papers used.

Every random function takes the record's own ``np.random.Generator`` (grain's ``random_map``
derives it from the pipeline seed and the record's position in the stream), so a pipeline
replays exactly after a restart. Images are ``[..., H, W, C]``: ``[H, W, C]`` for static images,
``[T, H, W, C]`` for event frames; the same spatial op is applied to every time step.

Resizing follows PIL's antialiased resampling (which torchvision's ``Resize`` and
``RandomResizedCrop`` call for PIL images), written as one ``[out, in]`` weight matrix per axis.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from bsnn_jax.data.base import TrainTransform


def chain(*transforms: TrainTransform) -> TrainTransform:
    """Applies ``transforms`` in order, all drawing from the record's generator."""

    def apply(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for transform in transforms:
            image = transform(image, rng)
        return image

    return apply


def random_crop(image: np.ndarray, rng: np.random.Generator, *, size: int, padding: int) -> np.ndarray:
    """``torchvision.transforms.RandomCrop(size, padding)``: zero-pad every side, crop ``size`` x ``size``."""
    height, width = image.shape[-3], image.shape[-2]
    # Allocating and assigning is ~10x faster than np.pad on small images.
    padded = np.zeros(image.shape[:-3] + (height + 2 * padding, width + 2 * padding, image.shape[-1]), image.dtype)
    padded[..., padding : padding + height, padding : padding + width, :] = image
    top = int(rng.integers(padded.shape[-3] - size + 1))
    left = int(rng.integers(padded.shape[-2] - size + 1))
    return padded[..., top : top + size, left : left + size, :]


def random_hflip(image: np.ndarray, rng: np.random.Generator, *, p: float = 0.5) -> np.ndarray:
    """Mirrors the width axis with probability ``p``."""
    return image[..., ::-1, :] if rng.random() < p else image


def cutout(image: np.ndarray, rng: np.random.Generator, *, length: int) -> np.ndarray:
    """Cutout (DeVries & Taylor 2017), one hole: zero a ``length`` square centred anywhere.

    The centre is uniform over the image and the square is clipped at the borders, as in the
    reference code used by Q-SNN and BSO. There it runs after ``ToTensor`` and before
    ``Normalize``, so the hole is black; zeroing the uint8 image is the same.
    """
    height, width = image.shape[-3], image.shape[-2]
    y, x = int(rng.integers(height)), int(rng.integers(width))
    y0, y1 = max(y - length // 2, 0), min(y + length // 2, height)
    x0, x1 = max(x - length // 2, 0), min(x + length // 2, width)
    out = image.copy()
    out[..., y0:y1, x0:x1, :] = 0
    return out


def random_roll(image: np.ndarray, rng: np.random.Generator, *, max_shift: int) -> np.ndarray:
    """``torch.roll`` by a random ``(dy, dx)``, each uniform in ``[-max_shift, max_shift]``.

    This is the DVS-CIFAR10 augmentation of TET / Q-SNN: pixels wrap around the border.
    """
    dy, dx = (int(s) for s in rng.integers(-max_shift, max_shift + 1, size=2))
    return np.roll(image, (dy, dx), axis=(-3, -2))


# PIL's filters (libImaging/Resample.c) and their support, in input pixels at scale 1.
_FILTERS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], float]] = {
    "box": (lambda x: ((x >= -0.5) & (x < 0.5)).astype(np.float64), 0.5),
    "bilinear": (lambda x: np.maximum(1.0 - np.abs(x), 0.0), 1.0),
}


def resample_matrix(in_size: int, out_size: int, *, start: float = 0.0, end: float | None = None, kind: str = "bilinear") -> np.ndarray:
    """``[out_size, in_size]`` weights of PIL's resampling of ``[start, end)`` onto ``out_size`` pixels.

    Port of ``precompute_coeffs`` in Pillow's ``Resample.c``: when shrinking, the filter is
    widened by the scale factor, which is what makes the resize antialiased.
    """
    filter_fn, support = _FILTERS[kind]
    end = in_size if end is None else end
    scale = (end - start) / out_size
    filterscale = max(scale, 1.0)
    support *= filterscale
    centers = start + (np.arange(out_size) + 0.5) * scale
    # Pillow truncates toward zero with a C cast, then clamps; trunc matches that cast.
    lo = np.maximum(np.trunc(centers - support + 0.5), 0)
    hi = np.minimum(np.trunc(centers + support + 0.5), in_size)
    x = np.arange(in_size)
    weights = filter_fn((x[None, :] - centers[:, None] + 0.5) / filterscale)
    weights *= (x[None, :] >= lo[:, None]) & (x[None, :] < hi[:, None])
    return weights / weights.sum(axis=1, keepdims=True)


def apply_resample(image: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``rows @ image @ cols.T`` over the H and W axes of ``[..., H, W, C]``, in float32.

    uint8 inputs come back as uint8, rounded and clipped; PIL rounds after each of its two
    passes instead of once, so the two can differ by 1.
    """
    out = np.einsum("oh,...hwc,pw->...opc", rows.astype(np.float32), image.astype(np.float32), cols.astype(np.float32), optimize=True)
    if image.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out


def resize(image: np.ndarray, size: tuple[int, int], *, kind: str = "bilinear") -> np.ndarray:
    """PIL-style antialiased resize of the H and W axes to ``size = (height, width)``."""
    rows = resample_matrix(image.shape[-3], size[0], kind=kind)
    cols = resample_matrix(image.shape[-2], size[1], kind=kind)
    return apply_resample(image, rows, cols)


def random_resized_crop(
    image: np.ndarray,
    rng: np.random.Generator,
    *,
    size: int,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> np.ndarray:
    """``torchvision.transforms.RandomResizedCrop(size)``: a random area/aspect crop, resized.

    Same sampling as torchvision's ``get_params``: 10 tries at a crop of ``scale`` of the area
    and log-uniform aspect ``ratio``, else a centre crop clamped to ``ratio``.
    """
    height, width = image.shape[-3], image.shape[-2]
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(height - h + 1))
            left = int(rng.integers(width - w + 1))
            break
    else:
        in_ratio = width / height
        if in_ratio < ratio[0]:
            w, h = width, int(round(width / ratio[0]))
        elif in_ratio > ratio[1]:
            w, h = int(round(height * ratio[1])), height
        else:
            w, h = width, height
        top, left = (height - h) // 2, (width - w) // 2
    crop = image[..., top : top + h, left : left + w, :]
    return resize(crop, (size, size))


def resize_center_crop(image: np.ndarray, *, resize_to: int, crop: int) -> np.ndarray:
    """``Resize(resize_to)`` (shorter side) then ``CenterCrop(crop)``, as torchvision does them.

    Only the kept rows and columns of the resize are computed: they are a slice of the
    resampling matrices.
    """
    height, width = image.shape[-3], image.shape[-2]
    if height <= width:
        new_h, new_w = resize_to, int(resize_to * width / height)
    else:
        new_h, new_w = int(resize_to * height / width), resize_to
    top = int(round((new_h - crop) / 2.0))
    left = int(round((new_w - crop) / 2.0))
    rows = resample_matrix(height, new_h)[top : top + crop]
    cols = resample_matrix(width, new_w)[left : left + crop]
    return apply_resample(image, rows, cols)
