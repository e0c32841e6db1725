"""DVS-Gesture and DVS-CIFAR10 as event frames ``float32 [T, 48, 48, 2]``, cached on disk.

Each recording is read with tonic, split into ``T`` frames of equal event count (tonic's
``ToFrame(n_event_bins=T)``: ``N // T`` events per frame, the last ``N mod T`` events dropped),
accumulated per polarity on the 128x128 sensor, then resized to 48x48 with PIL's antialiased
bilinear filter, as the TET / Q-SNN / BSO code does with ``transforms.Resize(48)``. Frames hold
event counts (no normalization, the TET / Q-SNN convention; the BSO paper additionally
standardizes DVS-CIFAR10).

Reading and binning every recording takes minutes, so the frames of both splits are written
once to ``<cache_dir>/<name>-T<T>/`` as ``.npy`` files and memory-mapped afterwards; the cache
is rebuilt when the list of recordings changes, and used alone when the raw data is gone.

On-disk layout of the raw data, as tonic's dataset classes expect it under ``data_dir``:

- ``DVSGesture/ibmGestureTrain/user<NN>_<lighting>/<label>.npy`` and ``.../ibmGestureTest/...``
  (tonic's preprocessed release: one ``[N, 4]`` array of x, y, polarity, t in ms per gesture).
- ``CIFAR10DVS/<class name>/*.aedat4`` (the ten CIFAR-10 class names).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import shutil
from pathlib import Path

import numpy as np
from numpy.lib import recfunctions

from bsnn_jax.data import augment
from bsnn_jax.data.base import IDENTITY, ArraySource, DataNotFoundError, Dataset, DatasetInfo, require

FRAME_SIZE = 48
SENSOR_SIZE = (128, 128, 2)  # tonic's (width, height, polarities) for both sensors
DEFAULT_TIMESTEPS = {"dvs_gesture": 16, "dvs_cifar10": 10}
NUM_CLASSES = {"dvs_gesture": 11, "dvs_cifar10": 10}
CIFAR10DVS_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10DVS_SPLIT_SEED = 0
"""Seed of the fixed per-class 9:1 train/test split of DVS-CIFAR10, which has no official split."""

_CACHE_FORMAT = 1
log = logging.getLogger(__name__)

Recording = tuple[Path, int]


def _tonic():
    return require("tonic", "tonic", "The DVS datasets")


def default_data_dir() -> Path:
    """``$BSNN_DATA_DIR``, else ``~/bsnn_data``: the folder holding ``DVSGesture/`` and ``CIFAR10DVS/``."""
    return Path(os.environ.get("BSNN_DATA_DIR", Path.home() / "bsnn_data")).expanduser()


def read_gesture_events(path: Path) -> np.ndarray:
    """A DVS-Gesture recording as tonic's structured ``(x, y, p, t)`` events."""
    return recfunctions.unstructured_to_structured(np.load(path), _tonic().datasets.DVSGesture.dtype)


def read_cifar10dvs_events(path: Path) -> np.ndarray:
    """A DVS-CIFAR10 recording as structured ``(t, x, y, p)`` events, read as tonic does."""
    require("aedat", "aedat", "Reading DVS-CIFAR10's .aedat4 files")
    events = _tonic().io.read_aedat4(str(path))
    events.dtype.names = ("t", "x", "y", "p")
    return events


def events_to_frames(events: np.ndarray, timesteps: int, size: int = FRAME_SIZE) -> np.ndarray:
    """Bins events into ``timesteps`` equal-count frames: ``float32 [T, size, size, 2]``."""
    frames = _tonic().transforms.ToFrame(sensor_size=SENSOR_SIZE, n_event_bins=timesteps)(events)
    # tonic gives [T, polarity, y, x]; the library is channels-last.
    frames = frames.transpose(0, 2, 3, 1).astype(np.float32)
    return augment.resize(frames, (size, size))


def _list_gesture(root: Path) -> dict[str, list[Recording]] | None:
    splits = {}
    for split, folder in (("train", "ibmGestureTrain"), ("test", "ibmGestureTest")):
        files = sorted((root / "DVSGesture" / folder).glob("user*_*/*.npy"))
        if not files:
            return None
        bad = [f for f in files if not f.stem.isdigit() or int(f.stem) >= NUM_CLASSES["dvs_gesture"]]
        if bad:
            raise ValueError(f"{bad[0]}: DVS-Gesture files must be named <label>.npy with label 0..10")
        splits[split] = [(f, int(f.stem)) for f in files]
    return splits


def _list_cifar10dvs(root: Path) -> dict[str, list[Recording]] | None:
    files = sorted((root / "CIFAR10DVS").rglob("*.aedat4"))
    if not files:
        return None
    by_class: dict[int, list[Path]] = {}
    for f in files:
        if f.parent.name not in CIFAR10DVS_CLASSES:
            raise ValueError(f"{f}: its folder must be one of the class names {CIFAR10DVS_CLASSES}")
        by_class.setdefault(CIFAR10DVS_CLASSES.index(f.parent.name), []).append(f)
    # Per class, ceil(90%) to train as in BSO's split_to_train_test_set, but drawn by a seeded
    # permutation rather than taken in file order.
    rng = np.random.default_rng(CIFAR10DVS_SPLIT_SEED)
    splits: dict[str, list[Recording]] = {"train": [], "test": []}
    for label in sorted(by_class):
        paths = by_class[label]
        order = rng.permutation(len(paths))
        n_train = math.ceil(0.9 * len(paths))
        splits["train"] += sorted((paths[i], label) for i in order[:n_train])
        splits["test"] += sorted((paths[i], label) for i in order[n_train:])
    return splits


_LISTERS = {"dvs_gesture": _list_gesture, "dvs_cifar10": _list_cifar10dvs}
_READERS = {"dvs_gesture": read_gesture_events, "dvs_cifar10": read_cifar10dvs_events}


def _missing_message(name: str, root: Path) -> str:
    tonic = _tonic()
    if name == "dvs_gesture":
        cls = tonic.datasets.DVSGesture
        return (
            f"DVS-Gesture not found under {root}: expected tonic's layout\n"
            f"  {root}/DVSGesture/ibmGestureTrain/user<NN>_<lighting>/<label>.npy\n"
            f"  {root}/DVSGesture/ibmGestureTest/user<NN>_<lighting>/<label>.npy\n"
            f"Download {cls.train_filename} ({cls.train_url}) and {cls.test_filename} ({cls.test_url}),\n"
            f"then: mkdir -p {root}/DVSGesture && tar -xzf {cls.train_filename} -C {root}/DVSGesture "
            f"&& tar -xzf {cls.test_filename} -C {root}/DVSGesture\n"
            "Or load(..., download=True) to let tonic fetch them, or pass data_dir= where they are."
        )
    cls = tonic.datasets.CIFAR10DVS
    return (
        f"DVS-CIFAR10 not found under {root}: expected tonic's layout {root}/CIFAR10DVS/<class>/*.aedat4\n"
        f"for the classes {', '.join(CIFAR10DVS_CLASSES)}.\n"
        f"Download {cls.filename} ({cls.url}), unzip it in {root}/CIFAR10DVS/, then unzip each of\n"
        f"airplane.zip ... truck.zip there (cd {root}/CIFAR10DVS && for z in *.zip; do unzip -q $z; done).\n"
        "Or load(..., download=True) to let tonic fetch them, or pass data_dir= where they are."
    )


def _download(name: str, root: Path) -> None:
    datasets = _tonic().datasets
    if name == "dvs_gesture":
        datasets.DVSGesture(save_to=str(root), train=True)
        datasets.DVSGesture(save_to=str(root), train=False)
    else:
        datasets.CIFAR10DVS(save_to=str(root))


def _manifest(splits: dict[str, list[Recording]], root: Path, timesteps: int) -> dict:
    return {
        "format": _CACHE_FORMAT,
        "timesteps": timesteps,
        "frame_size": FRAME_SIZE,
        "splits": {s: [[str(p.relative_to(root)), label] for p, label in items] for s, items in splits.items()},
    }


def _read_manifest(cache: Path) -> dict | None:
    try:
        return json.loads((cache / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def build_frame_cache(name: str, splits: dict[str, list[Recording]], root: Path, timesteps: int, cache: Path) -> None:
    """Writes ``<split>_frames.npy`` / ``<split>_labels.npy`` for every split into ``cache``.

    Written into a temporary sibling folder and renamed into place at the end, so an
    interrupted build never leaves a cache that looks complete.
    """
    read = _READERS[name]
    tmp = cache.with_name(f"{cache.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for split, items in splits.items():
        frames = np.lib.format.open_memmap(
            tmp / f"{split}_frames.npy",
            mode="w+",
            dtype=np.float32,
            shape=(len(items), timesteps, FRAME_SIZE, FRAME_SIZE, SENSOR_SIZE[2]),
        )
        for i, (path, _) in enumerate(items):
            frames[i] = events_to_frames(read(path), timesteps)
            if (i + 1) % 500 == 0:
                log.info("%s %s: %d/%d recordings binned", name, split, i + 1, len(items))
        frames.flush()
        del frames
        np.save(tmp / f"{split}_labels.npy", np.array([label for _, label in items], np.int32))
    (tmp / "manifest.json").write_text(json.dumps(_manifest(splits, root, timesteps)))
    shutil.rmtree(cache, ignore_errors=True)
    os.replace(tmp, cache)


DVS_AUGMENTATIONS = ("flip_roll", "crop_flip")


def dvs_cifar10_augmentation(kind: str):
    """DVS-CIFAR10's training augmentation of ``[T, 48, 48, 2]`` frames, the same draw for every frame.

    - ``"flip_roll"`` (TET / Q-SNN's ``DVSCifar10``, the AGMM rows): horizontal flip p=0.5, then
      ``torch.roll`` by a random ``(dy, dx)`` in ``[-5, 5]``, pixels wrapping around.
    - ``"crop_flip"`` (the BSO code's ``DVSCifar10_Dowload``: ``Resize(48)``, ``RandomCrop(48,
      padding=4)``, ``RandomHorizontalFlip``): zero-pad 4 px, crop 48x48 anywhere, then flip.
      The code applies no normalization there (the BSO paper says frames are standardized).
    """
    if kind == "flip_roll":
        return augment.chain(augment.random_hflip, functools.partial(augment.random_roll, max_shift=5))
    return augment.chain(functools.partial(augment.random_crop, size=FRAME_SIZE, padding=4), augment.random_hflip)


def load_dvs(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    timesteps: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    download: bool = False,
    augmentation: str = "flip_roll",
) -> Dataset:
    """DVS-Gesture (``dvs_gesture``, 11 classes) or DVS-CIFAR10 (``dvs_cifar10``, 10 classes).

    Args:
      name: ``"dvs_gesture"`` or ``"dvs_cifar10"``.
      data_dir: folder holding ``DVSGesture/`` or ``CIFAR10DVS/`` (default :func:`default_data_dir`).
      timesteps: frames per recording (default: 16 for DVS-Gesture, 10 for DVS-CIFAR10, the
        AGMM paper's settings).
      cache_dir: where the binned frames are kept (default ``<data_dir>/bsnn_frames``).
      download: let tonic download the raw data if it is missing.
      augmentation: DVS-CIFAR10's training augmentation (:data:`DVS_AUGMENTATIONS`).

    Splits: DVS-Gesture's official train/test; DVS-CIFAR10 a fixed per-class 9:1 split
    (seed :data:`CIFAR10DVS_SPLIT_SEED`). Training augmentation: for DVS-CIFAR10 ``"flip_roll"``,
    horizontal flip (p=0.5) and a random roll of up to +-5 px on each axis (TET / Q-SNN), or
    ``"crop_flip"`` (:func:`dvs_cifar10_augmentation`, the BSO code); none for DVS-Gesture, where
    a flip would turn left-hand gestures into right-hand ones.
    """
    if augmentation not in DVS_AUGMENTATIONS:
        raise ValueError(f"unknown DVS augmentation {augmentation!r}; known: {', '.join(DVS_AUGMENTATIONS)}")
    timesteps = DEFAULT_TIMESTEPS[name] if timesteps is None else timesteps
    if timesteps < 1:
        raise ValueError(f"timesteps must be >= 1, got {timesteps}")
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    cache = Path(cache_dir).expanduser() if cache_dir is not None else root / "bsnn_frames"
    cache = cache / f"{name}-T{timesteps}"

    splits = _LISTERS[name](root)
    if splits is None and download:
        _download(name, root)
        splits = _LISTERS[name](root)
    manifest = _read_manifest(cache)
    if splits is None and manifest is None:
        raise DataNotFoundError(_missing_message(name, root))
    if splits is not None and manifest != _manifest(splits, root, timesteps):
        log.info("Binning %s into %d frames per recording; cache: %s", name, timesteps, cache)
        build_frame_cache(name, splits, root, timesteps, cache)

    train, test = (
        ArraySource(np.load(cache / f"{s}_frames.npy", mmap_mode="r"), np.load(cache / f"{s}_labels.npy")) for s in ("train", "test")
    )
    train_transform = dvs_cifar10_augmentation(augmentation) if name == "dvs_cifar10" else None
    info = DatasetInfo(name, NUM_CLASSES[name], (FRAME_SIZE, FRAME_SIZE, SENSOR_SIZE[2]), timesteps, len(train), len(test))
    return Dataset(info, train, test, IDENTITY, train_transform=train_transform)
