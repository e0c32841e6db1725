"""CIFAR-10/100 and ImageNet as tensorflow-datasets random-access (array_record) sources.

Reading a prepared array_record dataset needs ``tensorflow-datasets``, ``array_record`` and
Pillow (to decode the stored PNG/JPEG), not TensorFlow. *Preparing* one (``tfds build``) does
need TensorFlow, on this machine or any other; the prepared folder can be copied.

Nothing here touches the network unless ``download=True``: before calling tfds we check on
disk that the dataset is prepared, because an unprepared ``tfds.load``/``tfds.data_source``
starts a download, which offline stalls for minutes before failing.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from bsnn_jax.data import augment
from bsnn_jax.data.autoaugment import cifar10_policy
from bsnn_jax.data.base import DataNotFoundError, Dataset, DatasetInfo, Normalization, RecordView, require

CIFAR_NORMALIZATION = {
    "cifar10": Normalization(1 / 255, (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": Normalization(1 / 255, (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
}
IMAGENET_NORMALIZATION = Normalization(1 / 255, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))

# Original archives that `tfds build` accepts from <data_dir>/downloads/manual/ instead of
# downloading them (it still checks their checksums).
_ARCHIVES = {
    "cifar10": ["cifar-10-binary.tar.gz  (https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz)"],
    "cifar100": ["cifar-100-binary.tar.gz  (https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz)"],
    "imagenet2012": [
        "ILSVRC2012_img_train.tar  (https://image-net.org, after registering)",
        "ILSVRC2012_img_val.tar",
    ],
}


def tfds_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """``data_dir``, else tfds's default: ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    return Path(os.environ.get("TFDS_DATA_DIR", Path.home() / "tensorflow_datasets"))


def _tfds():
    return require("tensorflow_datasets", "tensorflow-datasets", "Reading tfds datasets")


def missing_files(tfds_name: str, splits: tuple[str, ...], data_dir: Path) -> str | None:
    """What is missing for ``tfds.data_source(tfds_name)`` to read ``splits``, or ``None``.

    Checks the files tfds writes when it prepares a dataset: ``dataset_info.json`` and
    ``features.json`` in ``<data_dir>/<name>/<version>/``, and array_record shards per split.
    """
    version = _tfds().builder_cls(tfds_name).VERSION
    variant = data_dir / tfds_name / str(version)
    for meta in ("dataset_info.json", "features.json"):
        if not (variant / meta).is_file():
            return f"{variant / meta} does not exist"
    for split in splits:
        pattern = f"{tfds_name}-{split}.array_record-*"
        if not any(variant.glob(pattern)):
            others = sorted(p.name for p in variant.glob(f"{tfds_name}-{split}.*"))
            found = f" (found {others[0]}...: prepared in another format)" if others else ""
            return f"no {variant / pattern} shards{found}"
    return None


def build_instructions(tfds_name: str, data_dir: Path) -> str:
    """The commands that prepare ``tfds_name`` under ``data_dir``, online and offline."""
    archives = "\n".join(f"      {a}" for a in _ARCHIVES.get(tfds_name, []))
    manual = data_dir / "downloads" / "manual"
    offline = (
        f"  Offline (or for ImageNet, which cannot be downloaded automatically), first put\n{archives}\n"
        f"  in {manual}/ ; `tfds build` picks them up from there.\n"
        if archives
        else ""
    )
    return (
        f"Prepare it once (building needs TensorFlow, reading does not; you can build on another\n"
        f"machine and copy {data_dir / tfds_name}/ here):\n"
        f"  pip install tensorflow-cpu tensorflow-datasets\n"
        f"  tfds build {tfds_name} --data_dir {data_dir} --file_format array_record\n"
        f"{offline}"
        f"Or pass data_dir= pointing at a directory where it is prepared."
    )


def open_splits(tfds_name: str, splits: tuple[str, ...], data_dir: str | os.PathLike | None, *, download: bool) -> list[RecordView]:
    """Random-access sources of ``splits``, as ``{"image", "label"}`` records.

    Raises:
      DataNotFoundError: the dataset is not prepared under ``data_dir`` and ``download`` is False.
    """
    root = tfds_data_dir(data_dir)
    missing = missing_files(tfds_name, splits, root)
    if missing is not None and not download:
        raise DataNotFoundError(
            f"tfds dataset {tfds_name!r} is not prepared for random access under {root}: {missing}.\n" + build_instructions(tfds_name, root)
        )
    sources = _tfds().data_source(tfds_name, split=list(splits), data_dir=str(root), download=download)
    return [RecordView(source) for source in sources]


def cifar(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    autoaugment: bool = False,
    cutout: bool = True,
    download: bool = False,
) -> Dataset:
    """CIFAR-10 or CIFAR-100 with the papers' training augmentation.

    Train: random crop 32 with 4-pixel zero padding, horizontal flip, optionally AutoAugment's
    CIFAR-10 policy (Q-SNN's and BSO's scripts use it; the BSO paper does not list it), then
    Cutout (1 hole of 16 px), then the normalization of methods-spec 1.5 (in the loader).
    Test: normalization only.
    """
    train, test = open_splits(name, ("train", "test"), data_dir, download=download)
    steps = [functools.partial(augment.random_crop, size=32, padding=4), augment.random_hflip]
    if autoaugment:
        steps.append(cifar10_policy)
    if cutout:
        steps.append(functools.partial(augment.cutout, length=16))
    info = DatasetInfo(name, 10 if name == "cifar10" else 100, (32, 32, 3), None, len(train), len(test))
    return Dataset(info, train, test, CIFAR_NORMALIZATION[name], train_transform=augment.chain(*steps))


def imagenet(data_dir: str | os.PathLike | None = None) -> Dataset:
    """ImageNet-1k (tfds ``imagenet2012``; its ``validation`` split is the test split).

    Train: RandomResizedCrop 224 + horizontal flip; test: resize the shorter side to 256, then
    centre-crop 224 (torchvision's recipe, used by Q-SNN and BSO). tfds cannot download
    ImageNet, so there is no ``download`` option.
    """
    train, test = open_splits("imagenet2012", ("train", "validation"), data_dir, download=False)
    train_transform = augment.chain(functools.partial(augment.random_resized_crop, size=224), augment.random_hflip)
    eval_transform = functools.partial(augment.resize_center_crop, resize_to=256, crop=224)
    info = DatasetInfo("imagenet", 1000, (224, 224, 3), None, len(train), len(test))
    return Dataset(info, train, test, IMAGENET_NORMALIZATION, train_transform, eval_transform)
