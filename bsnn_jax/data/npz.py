"""Bring your own data: a ``.npz`` with ``x_train, y_train, x_test, y_test``.

Images are ``[N, H, W]`` or ``[N, H, W, C]`` (uint8, or float already scaled as you want it);
event frames are ``[N, T, H, W, C]`` (any numeric dtype, used as float32). Labels are integers
``0 .. K-1``; ``K`` is inferred as the largest label + 1. Static images are standardized per
channel with the training split's mean and std (uint8 first scaled to [0, 1]); event frames are
used as they are, like the built-in DVS sets.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from bsnn_jax.data.base import IDENTITY, ArraySource, DataNotFoundError, Dataset, DatasetInfo, Normalization

KEYS = ("x_train", "y_train", "x_test", "y_test")


class NpzFormatError(ValueError):
    """The arrays in a bring-your-own ``.npz`` do not describe a classification dataset."""


def _check_images(x: np.ndarray, key: str, path: Path) -> np.ndarray:
    """Returns ``x`` with a channel axis, after checking rank, dtype and finiteness."""
    if x.ndim not in (3, 4, 5):
        raise NpzFormatError(
            f"{path}: {key} has shape {x.shape}; expected [N, H, W] or [N, H, W, C] images, "
            "or [N, T, H, W, C] event frames (add a channel axis with x[..., None] if needed)"
        )
    if x.dtype == np.bool_ or not (
        x.dtype == np.uint8 or np.issubdtype(x.dtype, np.floating) or (x.ndim == 5 and np.issubdtype(x.dtype, np.integer))
    ):
        raise NpzFormatError(
            f"{path}: {key} has dtype {x.dtype}; images must be uint8 (0..255) or float "
            "(convert with x.astype(np.uint8) or x.astype(np.float32))"
        )
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise NpzFormatError(f"{path}: {key} contains NaN or infinite values")
    return x[..., None] if x.ndim == 3 else x


def _check_labels(y: np.ndarray, key: str, n: int, path: Path) -> np.ndarray:
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise NpzFormatError(
            f"{path}: {key} has shape {y.shape} and dtype {y.dtype}; expected a 1-d integer array "
            "of class indices (one-hot labels: y.argmax(-1); float labels: y.astype(np.int64))"
        )
    if len(y) != n:
        raise NpzFormatError(f"{path}: {key} has {len(y)} labels for {n} examples")
    if n and y.min() < 0:
        raise NpzFormatError(f"{path}: {key} has negative labels (min {y.min()}); use 0 .. K-1")
    return y


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        npz = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise NpzFormatError(f"{path}: not a readable .npz file ({e})") from e
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise NpzFormatError(f"{path}: holds a single array; save the four arrays with np.savez")
    with npz:
        missing = [k for k in KEYS if k not in npz.files]
        if missing:
            raise NpzFormatError(f"{path}: missing arrays {missing}; it has {npz.files}, needs {list(KEYS)}")
        try:
            return {k: npz[k] for k in KEYS}
        except ValueError as e:  # object arrays, which would need pickle
            raise NpzFormatError(f"{path}: arrays must be plain numeric arrays ({e})") from e


def load_npz(path: str | os.PathLike, *, timesteps: int | None = None) -> Dataset:
    """Loads and validates a bring-your-own dataset (see the module docstring for the format).

    Args:
      path: the ``.npz`` file.
      timesteps: if given for event frames, must equal their ``T``.

    Raises:
      DataNotFoundError: ``path`` does not exist.
      NpzFormatError: a key is missing or an array has the wrong shape, dtype or values.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataNotFoundError(f"{path} does not exist; write it with np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)")
    arrays = _read_arrays(path)
    x_train = _check_images(arrays["x_train"], "x_train", path)
    x_test = _check_images(arrays["x_test"], "x_test", path)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise NpzFormatError(f"{path}: x_train examples have shape {x_train.shape[1:]} but x_test {x_test.shape[1:]}")
    if (x_train.dtype == np.uint8) != (x_test.dtype == np.uint8):
        raise NpzFormatError(f"{path}: x_train is {x_train.dtype} but x_test is {x_test.dtype}; store both as uint8 or both as float")
    y_train = _check_labels(arrays["y_train"], "y_train", len(x_train), path)
    y_test = _check_labels(arrays["y_test"], "y_test", len(x_test), path)
    if len(x_train) == 0:
        raise NpzFormatError(f"{path}: x_train is empty")

    events = x_train.ndim == 5
    if events:
        if timesteps is not None and timesteps != x_train.shape[1]:
            raise NpzFormatError(f"{path}: event frames have T={x_train.shape[1]}, but timesteps={timesteps}")
        x_train, x_test = x_train.astype(np.float32), x_test.astype(np.float32)
        normalization = IDENTITY
    else:
        scale = 1 / 255 if x_train.dtype == np.uint8 else 1.0
        normalization = Normalization.from_data(x_train, scale)
    num_classes = int(max(y_train.max(), y_test.max(initial=0))) + 1
    info = DatasetInfo(
        f"npz:{path}",
        num_classes,
        tuple(x_train.shape[-3:]),
        x_train.shape[1] if events else None,
        len(x_train),
        len(x_test),
    )
    return Dataset(info, ArraySource(x_train, y_train), ArraySource(x_test, y_test), normalization)
