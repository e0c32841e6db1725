"""``npz:PATH`` signals ``[N, L]`` / ``[N, L, C]`` and sequences ``[N, T, F]``: shapes, T, normalization, errors."""

import numpy as np
import pytest

from bsnn_jax import data


def save(path, **arrays):
    np.savez(path, **arrays)
    return f"npz:{path}"


def labels(n):
    return np.arange(n) % 3


def first_batch(ds, split="test", batch_size=4):
    return next(iter(data.make_loader(ds, split, batch_size=batch_size, shard=(0, 1), augment=False)))


def test_2d_arrays_are_static_signals_standardized(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (8, 40), dtype=np.uint8)
    ds = data.load(save(tmp_path / "s.npz", x_train=x, y_train=labels(8), x_test=x[:4], y_test=labels(4)))
    assert (ds.info.input_shape, ds.info.timesteps) == ((40, 1, 1), None)
    scaled = x / 255.0
    expected = (scaled[:4] - scaled.mean()) / scaled.std()
    np.testing.assert_allclose(first_batch(ds)["image"][:, :, 0, 0], expected, rtol=1e-5, atol=1e-5)


def test_multichannel_signals_need_the_layout_key(tmp_path):
    x = np.random.default_rng(1).normal(size=(6, 10, 3)).astype(np.float32) * [1, 10, 100]
    arrays = dict(x_train=x, y_train=labels(6), x_test=x[:4], y_test=labels(4))
    assert data.load(save(tmp_path / "i.npz", **arrays)).info.input_shape == (10, 3, 1)  # read as [N, H, W] images
    ds = data.load(save(tmp_path / "s.npz", layout="signal", **arrays))
    assert ds.info.input_shape == (10, 1, 3)
    out = ds.normalization(ds.train.images)  # per channel
    np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1, rtol=1e-4)


def test_float_sequences_are_fed_one_row_per_step_and_standardized_per_feature(tmp_path):
    x = np.random.default_rng(2).normal(size=(8, 7, 5)).astype(np.float32) * np.arange(1, 6) + 3
    ds = data.load(save(tmp_path / "q.npz", layout="sequence", x_train=x, y_train=labels(8), x_test=x[:4], y_test=labels(4)), timesteps=7)
    assert (ds.info.input_shape, ds.info.timesteps, ds.info.num_classes) == ((1, 1, 5), 7, 3)
    batch = first_batch(ds)["image"]
    assert batch.shape == (4, 7, 1, 1, 5)
    mean, std = x.mean(axis=(0, 1)), x.std(axis=(0, 1))
    np.testing.assert_allclose(batch[:, :, 0, 0], (x[:4] - mean) / std, rtol=1e-4, atol=1e-4)


def test_integer_sequences_are_spike_counts_kept_as_they_are(tmp_path):
    x = np.random.default_rng(3).integers(0, 4, (6, 5, 9)).astype(np.int16)
    ds = data.load(save(tmp_path / "c.npz", layout="sequence", x_train=x, y_train=labels(6), x_test=x[:4], y_test=labels(4)))
    np.testing.assert_array_equal(first_batch(ds)["image"][:, :, 0, 0], x[:4].astype(np.float32))
    x4 = np.zeros((6, 5, 12, 2), np.float32)  # [N, T, L, C] signal sequences
    ds = data.load(save(tmp_path / "l.npz", layout="sequence", x_train=x4, y_train=labels(6), x_test=x4[:4], y_test=labels(4)))
    assert (ds.info.input_shape, ds.info.timesteps) == ((12, 1, 2), 5)


@pytest.mark.parametrize(
    "layout, x, timesteps, message",
    [
        (
            "sequence",
            np.zeros((6, 40, 3), np.float32),
            4,
            r"sequences have T=40, but timesteps=4; set model.timesteps=40 \(--config.model.timesteps=40\)",
        ),
        ("sequence", np.zeros((6, 40), np.float32), None, r"layout 'sequence' expects \[N, T, F\] feature sequences"),
        ("signal", np.zeros((6, 4, 4, 4), np.float32), None, r"layout 'signal' expects \[N, L\] or \[N, L, C\]"),
        ("rows", np.zeros((6, 4, 4), np.float32), None, r"layout is array\('rows'.*save one of \['image', 'signal', 'sequence'\]"),
        ("sequence", np.zeros((6, 4, 4), bool), None, "dtype bool; sequences must be uint8"),
    ],
)
def test_layout_errors_say_what_to_change(tmp_path, layout, x, timesteps, message):
    arrays = dict(layout=layout, x_train=x, y_train=labels(6), x_test=x[:4], y_test=labels(4))
    with pytest.raises(data.NpzFormatError, match=message):
        data.load(save(tmp_path / "bad.npz", **arrays), timesteps=timesteps)
