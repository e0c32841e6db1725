"""Bring-your-own ``npz:PATH`` datasets: what is accepted, and the errors for what is not."""

import numpy as np
import pytest

from bsnn_jax import data


def save(path, **arrays):
    np.savez(path, **arrays)
    return f"npz:{path}"


def good_arrays(**overrides):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (6, 5, 4), dtype=np.uint8),
        "y_train": np.array([0, 1, 2, 0, 1, 2]),
        "x_test": rng.integers(0, 256, (3, 5, 4), dtype=np.uint8),
        "y_test": np.array([4, 0, 1]),
    }
    return {**arrays, **overrides}


def test_grayscale_uint8_images(tmp_path):
    arrays = good_arrays()
    ds = data.load(save(tmp_path / "d.npz", **arrays))
    # Classes inferred from the largest label in either split; a channel axis is added.
    assert ds.info == data.DatasetInfo(f"npz:{tmp_path / 'd.npz'}", 5, (5, 4, 1), None, 6, 3)
    x = arrays["x_train"] / 255.0
    batch = ds.normalization(ds.test.images)
    np.testing.assert_allclose(batch[..., 0], (arrays["x_test"] / 255.0 - x.mean()) / x.std(), rtol=1e-5, atol=1e-5)


def test_float_rgb_images_standardized_per_channel(tmp_path):
    rng = np.random.default_rng(1)
    x_train = (rng.random((8, 3, 3, 3)) * [1, 10, 100]).astype(np.float32)
    arrays = good_arrays(x_train=x_train, x_test=x_train[:3], y_train=np.arange(8) % 2)
    ds = data.load(save(tmp_path / "d.npz", **arrays))
    out = ds.normalization(x_train)
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1, rtol=1e-4)


def test_event_frames_keep_their_values(tmp_path):
    x = np.random.default_rng(2).integers(0, 5, (6, 6, 8, 8, 2)).astype(np.uint8)
    ds = data.load(save(tmp_path / "e.npz", **good_arrays(x_train=x, x_test=x[:3])), timesteps=6)
    assert (ds.info.timesteps, ds.info.input_shape) == (6, (8, 8, 2))
    batch = next(iter(data.make_loader(ds, "test", batch_size=3, shard=(0, 1))))
    np.testing.assert_array_equal(batch["image"], x[:3].astype(np.float32))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(x_train=np.zeros(6, np.uint8)), r"x_train has shape \(6,\); layout 'image' expects \[N, H, W\] or \[N, H, W, C\] images"),
        (dict(x_train=np.zeros((6, 5, 4), np.int16)), "dtype int16; images must be uint8"),
        (dict(x_train=np.zeros((6, 5, 4), bool)), "dtype bool"),
        (dict(x_test=np.zeros((3, 4, 5), np.uint8)), r"x_train examples have shape \(5, 4, 1\) but x_test \(4, 5, 1\)"),
        (dict(x_test=np.zeros((3, 5, 4), np.float32)), "store both as uint8 or both as float"),
        (dict(x_train=np.full((6, 5, 4), np.nan, np.float32), x_test=np.zeros((3, 5, 4), np.float32)), "NaN"),
        (dict(y_train=np.array([0, 1, 2, 0, 1])), "5 labels for 6 examples"),
        (dict(y_train=np.array([0.0, 1, 2, 0, 1, 2])), r"y_train .* dtype float64; expected a 1-d integer.*astype"),
        (dict(y_train=np.eye(6, dtype=np.int64)), r"one-hot labels: y.argmax\(-1\)"),
        (dict(y_test=np.array([0, -1, 2])), "negative labels"),
        (dict(x_train=np.zeros((0, 5, 4), np.uint8), y_train=np.zeros(0, np.int64)), "x_train is empty"),
    ],
)
def test_invalid_arrays_say_what_and_how_to_fix(tmp_path, overrides, message):
    with pytest.raises(data.NpzFormatError, match=message):
        data.load(save(tmp_path / "bad.npz", **good_arrays(**overrides)))


def test_missing_keys_are_listed(tmp_path):
    arrays = good_arrays()
    del arrays["y_test"]
    with pytest.raises(data.NpzFormatError, match=r"missing arrays \['y_test'\]"):
        data.load(save(tmp_path / "bad.npz", **arrays))


def test_event_timesteps_must_match(tmp_path):
    x = np.zeros((6, 4, 2, 2, 2), np.float32)
    with pytest.raises(data.NpzFormatError, match="T=4, but timesteps=10"):
        data.load(save(tmp_path / "e.npz", **good_arrays(x_train=x, x_test=x[:3])), timesteps=10)


def test_unreadable_or_missing_files(tmp_path):
    with pytest.raises(data.DataNotFoundError, match="does not exist; write it with np.savez"):
        data.load(f"npz:{tmp_path / 'nope.npz'}")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(data.NpzFormatError, match="not a readable .npz"):
        data.load(f"npz:{tmp_path / 'junk.npz'}")
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(data.NpzFormatError, match="holds a single array"):
        data.load(f"npz:{tmp_path / 'one.npy'}")
    np.savez(tmp_path / "obj.npz", **{**good_arrays(), "y_test": np.array([1, "a"], dtype=object)})
    with pytest.raises(data.NpzFormatError, match="plain numeric arrays"):
        data.load(f"npz:{tmp_path / 'obj.npz'}")
