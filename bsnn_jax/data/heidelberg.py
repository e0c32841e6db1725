"""SHD and SSC, the Spiking Heidelberg Datasets (Cramer et al. 2020), as spike-count sequences.

Each recording is a list of spikes of 700 cochlea-model channels (``spikes/times`` in seconds,
``spikes/units``) with a ``labels`` entry, in one HDF5 file per split. Step ``t`` of the sequence
counts the spikes of every channel in ``[t dt, (t + 1) dt)``, ``dt = duration / T`` (1 s and T = 100
by default: 10 ms bins); later spikes are dropped (SHD recordings last up to ~1.4 s, most under 1 s).
Records are ``float32 [T, 1, 1, 700]`` (the loader's frame layout: a 700-feature vector per step),
binned when read, so nothing is cached and the files are read in place; counts are used as they are.

On-disk layout, as tonic's ``SHD`` / ``SSC`` classes write it under ``data_dir``:
``SHD/shd_train.h5``, ``SHD/shd_test.h5``; ``SSC/ssc_train.h5``, ``SSC/ssc_test.h5`` (SSC's
``ssc_valid.h5`` is not used).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bsnn_jax.data.base import IDENTITY, DataNotFoundError, Dataset, DatasetInfo, Record, require
from bsnn_jax.data.dvs import default_data_dir

CHANNELS = 700
DEFAULT_TIMESTEPS = 100
DEFAULT_DURATION = 1.0  # seconds binned into the T steps
NUM_CLASSES = {"shd": 20, "ssc": 35}
FOLDERS = {"shd": "SHD", "ssc": "SSC"}  # tonic's folder per dataset (its class name)


def _h5py():
    return require("h5py", "h5py", "The SHD / SSC datasets")


def bin_spikes(times: np.ndarray, units: np.ndarray, timesteps: int, duration: float, channels: int = CHANNELS) -> np.ndarray:
    """``counts[t, u]`` = spikes of channel ``u`` with ``t dt <= time < (t + 1) dt``, ``dt = duration / T``,
    as ``float32 [T, 1, 1, channels]``; spikes at or after ``duration`` are dropped."""
    step = np.floor(np.asarray(times, np.float64) * (timesteps / duration)).astype(np.int64)
    units = np.asarray(units, np.int64)
    keep = (step >= 0) & (step < timesteps) & (units >= 0) & (units < channels)
    counts = np.zeros((timesteps, channels), np.float32)
    np.add.at(counts, (step[keep], units[keep]), 1.0)
    return counts.reshape(timesteps, 1, 1, channels)


class HeidelbergSource:
    """The recordings of one HDF5 file, binned as they are read (:func:`bin_spikes`)."""

    def __init__(self, path: Path, timesteps: int, duration: float):
        self.path, self.timesteps, self.duration = path, timesteps, duration
        self._file = _h5py().File(path, "r")
        missing = [k for k in ("spikes/times", "spikes/units", "labels") if k not in self._file]
        if missing:
            raise DataNotFoundError(f"{path} is not an SHD/SSC file: it lacks {missing} (expected spikes/times, spikes/units, labels)")
        self.labels = np.asarray(self._file["labels"][()], np.int32)
        self._times, self._units = self._file["spikes/times"], self._file["spikes/units"]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> Record:
        counts = bin_spikes(self._times[index], self._units[index], self.timesteps, self.duration)
        return {"image": counts, "label": int(self.labels[index])}

    def __repr__(self) -> str:
        return f"HeidelbergSource({self.path}, T={self.timesteps}, {len(self)} recordings)"


def _missing_message(name: str, folder: Path) -> str:
    cls = getattr(require("tonic", "tonic", "Downloading SHD / SSC").datasets, FOLDERS[name])
    return (
        f"{FOLDERS[name]} not found: expected {folder}/{name}_train.h5 and {folder}/{name}_test.h5.\n"
        f"Download {cls.base_url}{cls.train_zip} and {cls.base_url}{cls.test_zip}, unzip them into {folder}/,\n"
        "or load(..., download=True) (--config.dataset.download=true) to let tonic fetch them,\n"
        "or pass data_dir= (--config.dataset.data_dir=) where they are."
    )


def load_heidelberg(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    timesteps: int | None = None,
    duration: float = DEFAULT_DURATION,
    download: bool = False,
) -> Dataset:
    """SHD (``shd``: 20 classes, spoken digits in English and German) or SSC (``ssc``: 35 classes,
    speech commands), 700 channels, T steps of ``duration / T`` seconds (default T = 100).

    Args:
      name: ``"shd"`` or ``"ssc"``.
      data_dir: the folder holding ``SHD/`` or ``SSC/`` (default ``$BSNN_DATA_DIR`` or ``~/bsnn_data``).
      timesteps: bins per recording.
      duration: seconds of each recording that are binned.
      download: let tonic download the files if they are missing.
    """
    timesteps = DEFAULT_TIMESTEPS if timesteps is None else timesteps
    if timesteps < 1 or duration <= 0:
        raise ValueError(f"timesteps must be >= 1 and duration > 0, got {timesteps} and {duration}")
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    folder = root / FOLDERS[name]
    paths = {split: folder / f"{name}_{split}.h5" for split in ("train", "test")}
    if download and not all(p.is_file() for p in paths.values()):
        tonic = require("tonic", "tonic", "Downloading SHD / SSC")
        cls = getattr(tonic.datasets, FOLDERS[name])
        for split in ("train", "test"):
            cls(save_to=str(root), train=split == "train") if name == "shd" else cls(save_to=str(root), split=split)
    if not all(p.is_file() for p in paths.values()):
        raise DataNotFoundError(_missing_message(name, folder))
    train, test = (HeidelbergSource(paths[s], timesteps, duration) for s in ("train", "test"))
    info = DatasetInfo(name, NUM_CLASSES[name], (1, 1, CHANNELS), timesteps, len(train), len(test))
    return Dataset(info, train, test, IDENTITY)
