"""Bring your own data: a ``.npz`` with ``x_train, y_train, x_test, y_test`` and optionally ``layout``.

``layout`` (a string saved in the file: ``np.savez(path, layout="sequence", ...)``) says what the
``x`` arrays hold; without it, 2-d arrays are signals and everything else images:

- ``image``: ``[N, H, W]`` or ``[N, H, W, C]`` images (uint8, or float already scaled as you want
  it), or ``[N, T, H, W, C]`` event frames (any numeric dtype, used as float32).
- ``signal``: ``[N, L]`` or ``[N, L, C]`` 1-d signals (uint8 or float), static like images: the
  model sees the whole signal at every time step (direct encoding).
- ``sequence``: ``[N, T, F]`` feature sequences or ``[N, T, L, C]`` signal sequences, fed step by
  step, one row per time step: T is the data's, and ``model.timesteps`` must equal it.

Labels are integers ``0 .. K-1``; ``K`` is inferred as the largest label + 1. Static images and
signals, and float sequences, are standardized per channel (last axis) with the training split's
mean and std (uint8 first scaled to [0, 1]); event frames and integer sequences (spike counts) are
used as they are, like the built-in DVS sets.

The loader carries every example as an image-like ``[H, W, C]`` frame (``[T, H, W, C]`` over time),
so signals travel as ``[L, 1, C]`` and feature vectors as ``[1, 1, F]``; the ``mlp`` family flattens
them, ``conv1d`` reads ``[L, 1, C]`` as a signal.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from bsnn_jax.data.base import IDENTITY, ArraySource, DataNotFoundError, Dataset, DatasetInfo, Normalization

KEYS = ("x_train", "y_train", "x_test", "y_test")
LAYOUTS = ("image", "signal", "sequence")


class NpzFormatError(ValueError):
    """The arrays in a bring-your-own ``.npz`` do not describe a classification dataset."""


# Per layout: the accepted ranks, how to describe them, and the image-like frames the loader carries.
_SHAPES = {
    "image": (
        (3, 4, 5),
        "[N, H, W] or [N, H, W, C] images, or [N, T, H, W, C] event frames (add a channel axis with x[..., None] if needed)",
    ),
    "signal": ((2, 3), "[N, L] or [N, L, C] signals"),
    "sequence": ((3, 4), "[N, T, F] feature sequences or [N, T, L, C] signal sequences"),
}


def _as_frames(x: np.ndarray, layout: str) -> np.ndarray:
    """``x`` as the loader carries it: ``[N, H, W, C]`` static frames or ``[N, T, H, W, C]`` sequences."""
    if layout == "image":
        return x[..., None] if x.ndim == 3 else x
    if layout == "signal":
        x = x[..., None] if x.ndim == 2 else x
        return x[:, :, None]
    return x[:, :, None, None] if x.ndim == 3 else x[:, :, :, None]


def _is_sequence(x: np.ndarray, layout: str) -> bool:
    return layout == "sequence" or x.ndim == 5


def _check_examples(x: np.ndarray, key: str, path: Path, layout: str) -> np.ndarray:
    """Returns ``x`` as frames (``_as_frames``), after checking rank, dtype and finiteness."""
    ranks, described = _SHAPES[layout]
    if x.ndim not in ranks:
        hint = " (a 2-d [N, L] array is read as signals; save layout='sequence' or 'image' to say otherwise)"
        raise NpzFormatError(f"{path}: {key} has shape {x.shape}; layout {layout!r} expects {described}" + hint)
    counts_ok = _is_sequence(x, layout) and np.issubdtype(x.dtype, np.integer)
    if x.dtype == np.bool_ or not (x.dtype == np.uint8 or np.issubdtype(x.dtype, np.floating) or counts_ok):
        raise NpzFormatError(
            f"{path}: {key} has dtype {x.dtype}; {layout}s must be uint8 (0..255) or float "
            "(convert with x.astype(np.uint8) or x.astype(np.float32))"
        )
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise NpzFormatError(f"{path}: {key} contains NaN or infinite values")
    return _as_frames(x, layout)


def _layout(stored: np.ndarray | None, x_train: np.ndarray, path: Path) -> str:
    """The ``layout`` saved in the file, else ``signal`` for 2-d arrays and ``image`` otherwise."""
    if stored is None:
        return "signal" if x_train.ndim == 2 else "image"
    layout = str(stored) if stored.ndim == 0 and stored.dtype.kind == "U" else None
    if layout not in LAYOUTS:
        raise NpzFormatError(
            f"{path}: layout is {stored!r}; save one of {list(LAYOUTS)} as a string, e.g. np.savez(..., layout='sequence')"
        )
    return layout


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
            return {k: npz[k] for k in KEYS + (("layout",) if "layout" in npz.files else ())}
        except ValueError as e:  # object arrays, which would need pickle
            raise NpzFormatError(f"{path}: arrays must be plain numeric arrays ({e})") from e


def load_npz(path: str | os.PathLike, *, timesteps: int | None = None) -> Dataset:
    """Loads and validates a bring-your-own dataset (see the module docstring for the format).

    Args:
      path: the ``.npz`` file.
      timesteps: if given for event frames and sequences, must equal their ``T``.

    Raises:
      DataNotFoundError: ``path`` does not exist.
      NpzFormatError: a key is missing or an array has the wrong shape, dtype or values.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataNotFoundError(f"{path} does not exist; write it with np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)")
    arrays = _read_arrays(path)
    layout = _layout(arrays.get("layout"), arrays["x_train"], path)
    x_train = _check_examples(arrays["x_train"], "x_train", path, layout)
    x_test = _check_examples(arrays["x_test"], "x_test", path, layout)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise NpzFormatError(f"{path}: x_train examples have shape {x_train.shape[1:]} but x_test {x_test.shape[1:]}")
    if (x_train.dtype == np.uint8) != (x_test.dtype == np.uint8):
        raise NpzFormatError(f"{path}: x_train is {x_train.dtype} but x_test is {x_test.dtype}; store both as uint8 or both as float")
    y_train = _check_labels(arrays["y_train"], "y_train", len(x_train), path)
    y_test = _check_labels(arrays["y_test"], "y_test", len(x_test), path)
    if len(x_train) == 0:
        raise NpzFormatError(f"{path}: x_train is empty")

    events = x_train.ndim == 5
    if events and timesteps is not None and timesteps != x_train.shape[1]:
        t = x_train.shape[1]
        raise NpzFormatError(
            f"{path}: {'sequences' if layout == 'sequence' else 'event frames'} have T={t}, but timesteps={timesteps}; "
            f"set model.timesteps={t} (--config.model.timesteps={t})"
        )
    if events and not (layout == "sequence" and np.issubdtype(x_train.dtype, np.floating)):
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
