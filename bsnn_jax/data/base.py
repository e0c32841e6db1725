"""Types shared by every dataset: metadata, random-access sources, normalization, errors."""

from __future__ import annotations

import dataclasses
import importlib
import types
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

Record = dict[str, Any]
"""One example: ``{"image": np.ndarray, "label": int}``.

``image`` is ``uint8 [H, W, C]`` for static image sets (any size for ImageNet, before the
crop), or ``float32 [T, H, W, C]`` for event frames.
"""

TrainTransform = Callable[[np.ndarray, np.random.Generator], np.ndarray]
EvalTransform = Callable[[np.ndarray], np.ndarray]


class DataNotFoundError(FileNotFoundError):
    """A dataset's files are not where they were looked for; the message says how to get them."""


def require(module: str, package: str, purpose: str) -> types.ModuleType:
    """Imports an optional dependency, or says which package to install for ``purpose``."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"{purpose} needs the {package!r} package: pip install {package!r}") from e


class Source(Protocol):
    """Random-access records: ``len(source)`` and ``source[i]``.

    A source may also define ``__getitems__(indices) -> list[Record]``; the loader then reads
    each batch with one call (tfds's array_record sources read those in parallel).
    """

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Record: ...


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset.

    Attributes:
      name: the name given to :func:`bsnn_jax.data.load`.
      num_classes: labels are ``0 .. num_classes - 1``.
      input_shape: ``(H, W, C)`` of one batched image or event frame.
      timesteps: ``T`` for event frames (``[T, H, W, C]`` per example); ``None`` for static
        images, which the model repeats over its own time steps.
      num_train: examples in the training split (before per-host sharding).
      num_test: examples in the test split.
    """

    name: str
    num_classes: int
    input_shape: tuple[int, int, int]
    timesteps: int | None
    num_train: int
    num_test: int


@dataclasses.dataclass(frozen=True)
class Normalization:
    """``x -> (x * scale - mean) / std``, per channel (the last axis).

    ``scale`` maps the stored value range to the one ``mean``/``std`` were measured in
    (``1/255`` for uint8 images, as torchvision's ``ToTensor`` does before ``Normalize``).
    """

    scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        # Folded into one multiply and one subtract over the whole batch: the loader calls this
        # once per batch, so it stays a couple of vectorized passes whatever the batch size.
        std = np.asarray(self.std, np.float32)
        gain = np.float32(self.scale) / std
        offset = np.asarray(self.mean, np.float32) / std
        out = np.multiply(x, gain, dtype=np.float32)
        out -= offset
        return out

    @classmethod
    def from_data(cls, x: np.ndarray, scale: float) -> Normalization:
        """Per-channel mean/std of ``x * scale`` (channel = last axis); a constant channel gets std 1."""
        axes = tuple(range(x.ndim - 1))
        mean = x.mean(axis=axes, dtype=np.float64) * scale
        std = x.std(axis=axes, dtype=np.float64) * scale
        std = np.where(std > 0, std, 1.0)
        return cls(scale, tuple(float(m) for m in mean), tuple(float(s) for s in std))


IDENTITY = Normalization(1.0, (0.0,), (1.0,))
"""For event frames, which are fed as event counts (the TET / Q-SNN convention)."""


def read_batch(source: Source, indices: Sequence[int]) -> list[Record]:
    """``[source[i] for i in indices]``, in one ``__getitems__`` call when the source has one."""
    getitems = getattr(source, "__getitems__", None)
    return getitems(list(indices)) if getitems is not None else [source[i] for i in indices]


class ArraySource:
    """A :class:`Source` over in-memory (or memory-mapped) arrays.

    Args:
      images: ``[N, ...]`` array; ``images[i]`` is record ``i``'s image.
      labels: ``[N]`` integer array.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = np.asarray(labels, np.int32)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> Record:
        return {"image": self.images[index], "label": int(self.labels[index])}

    def __repr__(self) -> str:
        return f"ArraySource(images={self.images.shape} {self.images.dtype}, labels={self.labels.shape})"


class RecordView:
    """Presents a source whose records carry extra keys (tfds: ``id``, ``file_name``, ...) as
    ``{"image", "label"}`` records."""

    def __init__(self, source: Sequence[dict[str, Any]]):
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> Record:
        return self._select(self.source[index])

    def __getitems__(self, indices: Sequence[int]) -> list[Record]:
        return [self._select(r) for r in read_batch(self.source, indices)]

    @staticmethod
    def _select(record: dict[str, Any]) -> Record:
        return {"image": record["image"], "label": int(record["label"])}

    def __repr__(self) -> str:
        return f"RecordView({self.source!r})"


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A dataset ready for :func:`bsnn_jax.data.make_loader`.

    Attributes:
      info: shapes, sizes and class count.
      train: random-access training records.
      test: random-access test records.
      normalization: applied by the loader to every batch, after the transforms.
      train_transform: per-record augmentation ``(image, rng) -> image``; ``None`` for none.
      eval_transform: deterministic per-record transform for evaluation (ImageNet's resize and
        center crop), also used for training when augmentation is switched off; ``None`` for
        the identity.
    """

    info: DatasetInfo
    train: Source
    test: Source
    normalization: Normalization
    train_transform: TrainTransform | None = None
    eval_transform: EvalTransform | None = None
