"""N-MNIST (Orchard et al. 2015): MNIST digits recorded by a moving ATIS sensor, as event frames
``float32 [T, 34, 34, 2]`` (event counts per polarity; no normalization, as the DVS sets).

Each recording (a ``.bin`` file of 5-byte events, read with ``tonic.io.read_mnist_file``) is split
into T windows of equal duration (tonic's ``ToFrame(n_time_bins=T)``) when read, so nothing is
cached. On-disk layout, as tonic's ``NMNIST`` class writes it under ``data_dir``:
``NMNIST/Train/<digit>/*.bin`` and ``NMNIST/Test/<digit>/*.bin``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bsnn_jax.data.base import IDENTITY, DataNotFoundError, Dataset, DatasetInfo, Record, require
from bsnn_jax.data.dvs import default_data_dir

SENSOR_SIZE = (34, 34, 2)  # tonic's (width, height, polarities)
DEFAULT_TIMESTEPS = 10
FOLDERS = {"train": "Train", "test": "Test"}


def _tonic():
    return require("tonic", "tonic", "The N-MNIST dataset")


class NMnistSource:
    """The recordings of one split, binned into T frames as they are read."""

    def __init__(self, files: list[tuple[Path, int]], timesteps: int):
        self.files, self.timesteps = files, timesteps
        tonic = _tonic()
        self._dtype = tonic.datasets.NMNIST.dtype
        self._to_frames = tonic.transforms.ToFrame(sensor_size=SENSOR_SIZE, n_time_bins=timesteps)
        self._read = tonic.io.read_mnist_file

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Record:
        path, label = self.files[index]
        frames = self._to_frames(self._read(str(path), dtype=self._dtype))  # [T, polarity, y, x]
        return {"image": np.ascontiguousarray(frames.transpose(0, 2, 3, 1), np.float32), "label": label}


def _list(folder: Path) -> list[tuple[Path, int]]:
    return [(f, int(f.parent.name)) for f in sorted(folder.glob("[0-9]/*.bin"))]


def load_nmnist(data_dir: str | os.PathLike | None = None, *, timesteps: int | None = None, download: bool = False) -> Dataset:
    """N-MNIST, 60k train / 10k test recordings, 10 classes, ``[T, 34, 34, 2]`` event frames (default T = 10).

    Args:
      data_dir: the folder holding ``NMNIST/`` (default ``$BSNN_DATA_DIR`` or ``~/bsnn_data``).
      timesteps: frames per recording, each an equal share of the recording's duration.
      download: let tonic download and extract the recordings if they are missing.
    """
    timesteps = DEFAULT_TIMESTEPS if timesteps is None else timesteps
    if timesteps < 1:
        raise ValueError(f"timesteps must be >= 1, got {timesteps}")
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    splits = {s: _list(root / "NMNIST" / folder) for s, folder in FOLDERS.items()}
    if download and not all(splits.values()):
        for train in (True, False):
            _tonic().datasets.NMNIST(save_to=str(root), train=train)
        splits = {s: _list(root / "NMNIST" / folder) for s, folder in FOLDERS.items()}
    if not all(splits.values()):
        cls = _tonic().datasets.NMNIST
        raise DataNotFoundError(
            f"N-MNIST not found: expected {root}/NMNIST/Train/<digit>/*.bin and {root}/NMNIST/Test/<digit>/*.bin.\n"
            f"Download {cls.train_filename} ({cls.train_url}) and {cls.test_filename} ({cls.test_url}) and unzip them in "
            f"{root}/NMNIST/, or load(..., download=True) (--config.dataset.download=true) to let tonic fetch them,\n"
            "or pass data_dir= (--config.dataset.data_dir=) where they are."
        )
    train, test = (NMnistSource(splits[s], timesteps) for s in ("train", "test"))
    info = DatasetInfo("nmnist", 10, (SENSOR_SIZE[1], SENSOR_SIZE[0], SENSOR_SIZE[2]), timesteps, len(train), len(test))
    return Dataset(info, train, test, IDENTITY)
