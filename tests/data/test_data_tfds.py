"""CIFAR and ImageNet through tfds array_record sources, on tiny datasets written in tfds's real format.

``tfds.testing.mock_data`` would also run without TensorFlow, but it replaces the reading path
(and our on-disk check) with random records; writing a real prepared dataset exercises the same
code as a user's ``tfds build`` output, decoding included.
"""

import tempfile

import numpy as np
import pytest

from bsnn_jax import data
from bsnn_jax.data.tfds_sources import CIFAR_NORMALIZATION


@pytest.fixture
def cifar10_dir(tmp_path, write_tfds, encode_image, monkeypatch):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 32, 32, 3), dtype=np.uint8)
    examples = [{"id": f"x{i}", "image": encode_image(images[i]), "label": i} for i in range(7)]
    system_tmp = tmp_path / "system_tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    write_tfds("cifar10", tmp_path / "data", {"train": examples[:5], "test": examples[5:]})
    assert not list(system_tmp.iterdir())  # nothing left in the system's temporary directory
    return tmp_path / "data", images


def test_cifar10_records_and_info(cifar10_dir):
    data_dir, images = cifar10_dir
    ds = data.load("cifar10", data_dir=data_dir)
    assert ds.info == data.DatasetInfo("cifar10", 10, (32, 32, 3), None, 5, 2)
    for i in range(5):
        record = ds.train[i]
        assert set(record) == {"image", "label"}
        np.testing.assert_array_equal(record["image"], images[record["label"]])  # PNG is lossless


def test_cifar10_batches(cifar10_dir):
    data_dir, images = cifar10_dir
    ds = data.load("cifar10", data_dir=data_dir, autoaugment=True)
    test = next(iter(data.make_loader(ds, "test", batch_size=2, shard=(0, 1))))
    mean, std = np.array(CIFAR_NORMALIZATION["cifar10"].mean), np.array(CIFAR_NORMALIZATION["cifar10"].std)
    np.testing.assert_array_equal(mean, [0.4914, 0.4822, 0.4465])
    expected = (images[test["label"]] / 255.0 - mean) / std
    np.testing.assert_allclose(test["image"], expected, rtol=1e-5, atol=1e-5)
    train = next(iter(data.make_loader(ds, batch_size=4, shard=(0, 1))))
    assert train["image"].shape == (4, 32, 32, 3) and train["image"].dtype == np.float32
    # Cutout leaves a black square: somewhere the normalized value is exactly -mean/std.
    black = np.isclose(train["image"], -mean / std, atol=1e-6).all(-1)
    assert black.reshape(4, -1).sum(-1).min() >= 64  # a 16x16 hole clipped at a corner keeps 8x8


def test_missing_cifar_gives_the_exact_commands(tmp_path):
    with pytest.raises(data.DataNotFoundError) as error:
        data.load("cifar100", data_dir=tmp_path)
    message = str(error.value)
    assert f"tfds build cifar100 --data_dir {tmp_path} --file_format array_record" in message
    assert "cifar-100-binary.tar.gz" in message and f"{tmp_path}/downloads/manual/" in message
    assert "pip install tensorflow-cpu tensorflow-datasets" in message


def test_cifar_prepared_as_tfrecord_is_reported(cifar10_dir):
    data_dir, _ = cifar10_dir
    variant = next((data_dir / "cifar10").iterdir())
    for shard in variant.glob("*.array_record-*"):
        shard.rename(shard.with_name(shard.name.replace("array_record", "tfrecord")))
    with pytest.raises(data.DataNotFoundError, match="prepared in another format"):
        data.load("cifar10", data_dir=data_dir)


def test_imagenet_crops_to_224(tmp_path, write_tfds, encode_image):
    rng = np.random.default_rng(0)
    shapes = [(40, 60), (64, 48), (30, 30), (50, 80), (33, 70)]
    examples = [
        {"image": encode_image(rng.integers(0, 256, s + (3,), dtype=np.uint8), "JPEG"), "label": 7 * i, "file_name": f"n{i}.JPEG"}
        for i, s in enumerate(shapes)
    ]
    write_tfds("imagenet2012", tmp_path, {"train": examples[:3], "validation": examples[3:]})
    ds = data.load("imagenet", data_dir=tmp_path)
    assert ds.info == data.DatasetInfo("imagenet", 1000, (224, 224, 3), None, 3, 2)
    for split, size in (("train", 3), ("test", 2)):
        batch = next(iter(data.make_loader(ds, split, batch_size=size, shard=(0, 1))))
        assert batch["image"].shape == (size, 224, 224, 3)
        assert np.isfinite(batch["image"]).all()
