"""Input pipelines: datasets as random-access sources, and a grain loader over them.

Example::

    from bsnn_jax import data

    ds = data.load("fashion_mnist")
    loader = data.make_loader(ds, "train", batch_size=128, seed=0)
    it = iter(loader)
    batch = next(it)        # {"image": float32 [128, 28, 28, 1], "label": int32 [128]}
    state = it.get_state()  # store with the checkpoint; it.set_state(state) resumes exactly
"""

from __future__ import annotations

import os

from bsnn_jax.data import builtin, dvs, heidelberg, nmnist, npz, sequences, tfds_sources
from bsnn_jax.data.base import (
    ArraySource,
    DataNotFoundError,
    Dataset,
    DatasetInfo,
    Normalization,
    Record,
    Source,
)
from bsnn_jax.data.idx import IdxFormatError, read_idx
from bsnn_jax.data.loader import Batch, Loader, make_loader
from bsnn_jax.data.npz import NpzFormatError

KNOWN_DATASETS = (
    "fashion_mnist",
    "digits",
    "seq_fashion_mnist",
    "seq_digits",
    "cifar10",
    "cifar100",
    "imagenet",
    "dvs_gesture",
    "dvs_cifar10",
    "nmnist",
    "shd",
    "ssc",
    "npz:PATH",
)


def load(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    timesteps: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    autoaugment: bool = False,
    cutout: bool = True,
    dvs_augmentation: str = "flip_roll",
    download: bool = False,
    duration: float | None = None,
) -> Dataset:
    """Opens a dataset by name.

    Args:
      name: one of :data:`KNOWN_DATASETS`; ``"npz:PATH"`` loads your own arrays from ``PATH``;
        ``seq_`` + an image set reads its images row by row (one row per time step, ``data.sequences``).
      data_dir: where the data lives. Defaults: Fashion-MNIST ``/usr/share/datasets/fashion-mnist``
        (Debian's ``dataset-fashion-mnist``); CIFAR/ImageNet tfds's ``$TFDS_DATA_DIR`` or
        ``~/tensorflow_datasets``; DVS, SHD and SSC ``$BSNN_DATA_DIR`` or ``~/bsnn_data``.
      timesteps: frames per recording for event data (DVS default 16 for Gesture, 10 for
        CIFAR10-DVS; SHD/SSC 100 bins of 10 ms; for ``npz:`` event frames and sequences it must
        match the arrays). Static-image
        datasets have no time axis and ignore it: the model repeats the image over its steps.
      cache_dir: DVS only: where binned frames are cached (default ``<data_dir>/bsnn_frames``).
      autoaugment: CIFAR only: add AutoAugment's CIFAR-10 policy to the training augmentation.
      cutout: CIFAR only: Cutout (1 hole, 16 px) in the training augmentation.
      dvs_augmentation: DVS-CIFAR10 only: ``"flip_roll"`` (TET / Q-SNN) or ``"crop_flip"`` (the
        BSO code: pad 4, random crop 48, flip); see :func:`bsnn_jax.data.dvs.dvs_cifar10_augmentation`.
      download: allow fetching missing data from the internet (tfds for Fashion-MNIST and
        CIFAR, which then also needs TensorFlow; tonic for DVS). Off by default: a missing
        dataset is an error that says how to get it.
      duration: SHD / SSC only: the seconds of each recording binned into the T steps (default 1 s).

    Raises:
      ValueError: unknown ``name``.
      DataNotFoundError: the data is not on disk (and ``download`` is False); the message
        gives the command or the files and folder that fix it.
    """
    if name in ("seq_fashion_mnist", "seq_digits"):
        # T is the image height; train.setup checks it against model.timesteps
        return sequences.rows_as_steps(load(name.removeprefix("seq_"), data_dir=data_dir, download=download), name)
    if name.startswith("npz:"):
        return npz.load_npz(name.removeprefix("npz:"), timesteps=timesteps)
    if name == "fashion_mnist":
        return builtin.fashion_mnist(data_dir, download=download)
    if name == "digits":
        return builtin.digits()
    if name in ("cifar10", "cifar100"):
        return tfds_sources.cifar(name, data_dir, autoaugment=autoaugment, cutout=cutout, download=download)
    if name == "imagenet":
        return tfds_sources.imagenet(data_dir)
    if name == "nmnist":
        return nmnist.load_nmnist(data_dir, timesteps=timesteps, download=download)
    if name in ("shd", "ssc"):
        extra = {} if duration is None else {"duration": duration}
        return heidelberg.load_heidelberg(name, data_dir, timesteps=timesteps, download=download, **extra)
    if name in ("dvs_gesture", "dvs_cifar10"):
        return dvs.load_dvs(name, data_dir, timesteps=timesteps, cache_dir=cache_dir, download=download, augmentation=dvs_augmentation)
    raise ValueError(f"unknown dataset {name!r}; known: {', '.join(KNOWN_DATASETS)}")


__all__ = [
    "KNOWN_DATASETS",
    "ArraySource",
    "Batch",
    "DataNotFoundError",
    "Dataset",
    "DatasetInfo",
    "IdxFormatError",
    "Loader",
    "Normalization",
    "NpzFormatError",
    "Record",
    "Source",
    "load",
    "make_loader",
    "read_idx",
]
