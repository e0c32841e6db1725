"""Image datasets read as sequences: row ``i`` of an ``[H, W, C]`` image is time step ``i`` (T = H, F = W*C).

Sequential (row-by-row) MNIST and Fashion-MNIST are the usual first temporal benchmarks of
recurrent and spiking networks: the network sees one row per step and must remember what it saw.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from bsnn_jax.data.base import Dataset, Normalization, Record, Source, read_batch


class RowsAsSteps:
    """A :class:`Source` presenting each ``[H, W, C]`` image as a ``[H, 1, 1, W*C]`` sequence (the
    loader's ``[T, H, W, C]`` frame layout with one feature vector per step); labels unchanged."""

    def __init__(self, source: Source):
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    @staticmethod
    def _rows(record: Record) -> Record:
        image = np.asarray(record["image"])
        return {"image": image.reshape(image.shape[0], 1, 1, -1), "label": record["label"]}

    def __getitem__(self, index: int) -> Record:
        return self._rows(self.source[index])

    def __getitems__(self, indices: Sequence[int]) -> list[Record]:
        return [self._rows(r) for r in read_batch(self.source, indices)]


def rows_as_steps(dataset: Dataset, name: str) -> Dataset:
    """``dataset``'s static images as row sequences, T = H steps of W*C features each.

    The images' per-channel normalization is kept (repeated over the W pixels of a row, in the
    row's ``[W, C]`` order); their augmentation (crops, flips) is dropped, as it is not an
    augmentation of sequences.
    """
    h, w, c = dataset.info.input_shape
    if dataset.info.timesteps is not None:
        raise ValueError(f"{dataset.info.name} already has a time axis (T={dataset.info.timesteps}); rows_as_steps reads static images")
    norm = dataset.normalization
    normalization = Normalization(norm.scale, tuple(norm.mean) * w, tuple(norm.std) * w) if c > 1 else norm
    info = dataclasses.replace(dataset.info, name=name, input_shape=(1, 1, w * c), timesteps=h)
    return Dataset(info, RowsAsSteps(dataset.train), RowsAsSteps(dataset.test), normalization)


def intensities(dataset: Dataset) -> Dataset:
    """``dataset`` with its normalization reduced to its scale: pixels in [0, 1] rather than
    standardized, the intensities the rate and latency encoders read as spike probabilities
    (``ops.encode``). Data without a scale (signals, spike counts) are read as stored."""
    return dataclasses.replace(dataset, normalization=Normalization(dataset.normalization.scale, (0.0,), (1.0,)))
