"""Datasets that need no preparation step: Fashion-MNIST (from its IDX files) and sklearn's digits."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from bsnn_jax.data import tfds_sources
from bsnn_jax.data.base import ArraySource, DataNotFoundError, Dataset, DatasetInfo, Normalization, require
from bsnn_jax.data.idx import IdxFormatError, check_idx, read_idx

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian's ``dataset-fashion-mnist`` package installs the four original files."""

FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

FASHION_MNIST_NORMALIZATION = Normalization(1 / 255, (0.2860,), (0.3530,))


def _find(directory: Path, filename: str) -> Path | None:
    """``directory/filename``, or the same file already gunzipped."""
    for candidate in (directory / filename, directory / filename.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def _read_fashion_split(directory: Path, split: str) -> ArraySource:
    images_file, labels_file = (_find(directory, f) for f in FASHION_MNIST_FILES[split])
    images, labels = read_idx(images_file), read_idx(labels_file)
    check_idx(images, name=str(images_file), ndim=3, dtype=np.uint8)
    check_idx(labels, name=str(labels_file), ndim=1, dtype=np.uint8)
    if images.shape[1:] != (28, 28) or len(images) != len(labels) or labels.max() > 9:
        raise IdxFormatError(
            f"{images_file} / {labels_file}: expected N 28x28 images and N labels in 0..9, "
            f"got images {images.shape}, labels {labels.shape} (max {labels.max()})"
        )
    return ArraySource(images[..., None], labels)


def fashion_mnist(data_dir: str | os.PathLike | None = None, *, download: bool = False) -> Dataset:
    """Fashion-MNIST, 60k train / 10k test 28x28 grayscale images, 10 classes, held in memory.

    Looked for, in order: the four original IDX files (gzipped or not) in ``data_dir``, or in
    :data:`FASHION_MNIST_DIR` when ``data_dir`` is None; then a tfds-prepared ``fashion_mnist``
    (array_record) under ``data_dir`` or tfds's default directory; then, only if ``download``,
    tfds downloads and prepares it (needs the network and TensorFlow).

    Normalization: scale to [0, 1], then mean 0.2860, std 0.3530.
    """
    idx_dir = Path(data_dir).expanduser() if data_dir is not None else FASHION_MNIST_DIR
    names = [f for pair in FASHION_MNIST_FILES.values() for f in pair]
    missing = [f for f in names if _find(idx_dir, f) is None]
    if not missing:
        train, test = (_read_fashion_split(idx_dir, split) for split in ("train", "test"))
    else:
        tfds_dir = tfds_sources.tfds_data_dir(data_dir)
        if not download and tfds_sources.missing_files("fashion_mnist", ("train", "test"), tfds_dir):
            raise DataNotFoundError(
                f"Fashion-MNIST not found: {', '.join(missing)} missing from {idx_dir}, "
                f"and no tfds-prepared fashion_mnist under {tfds_dir}. Either:\n"
                "  * apt-get install -y dataset-fashion-mnist   (Debian/Ubuntu; installs the files "
                f"in {FASHION_MNIST_DIR})\n"
                "  * or download the 4 files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,\n"
                "    t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) from the Fashion-MNIST\n"
                "    GitHub repository (https://github.com/zalandoresearch/fashion-mnist, 'Get the Data')\n"
                f"    and put them in {idx_dir}\n"
                "  * or load('fashion_mnist', download=True) to let tfds fetch and prepare it "
                "(needs the network and TensorFlow)."
            )
        train, test = tfds_sources.open_splits("fashion_mnist", ("train", "test"), data_dir, download=download)
    info = DatasetInfo("fashion_mnist", 10, (28, 28, 1), None, len(train), len(test))
    return Dataset(info, train, test, FASHION_MNIST_NORMALIZATION)


def digits() -> Dataset:
    """scikit-learn's 8x8 handwritten digits (1797 images, 10 classes), shipped inside its wheel.

    The last 20% of sklearn's fixed order is the test split: 1437 train, 360 test images.
    Pixels are integers 0..16; normalization scales by 1/16 and standardizes with the
    training split's mean and std.
    """
    sklearn_datasets = require("sklearn.datasets", "scikit-learn", "The 'digits' dataset")
    bunch = sklearn_datasets.load_digits()
    images = bunch.images.astype(np.uint8)[..., None]
    labels = bunch.target
    n_train = len(labels) - int(np.ceil(0.2 * len(labels)))
    train = ArraySource(images[:n_train], labels[:n_train])
    test = ArraySource(images[n_train:], labels[n_train:])
    info = DatasetInfo("digits", 10, (8, 8, 1), None, len(train), len(test))
    return Dataset(info, train, test, Normalization.from_data(train.images, scale=1 / 16))
