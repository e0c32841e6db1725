"""Image sets read row by row: ``seq_digits`` against sklearn's digits, and the channel order of RGB rows."""

import numpy as np
import pytest

from bsnn_jax import data
from bsnn_jax.data.base import ArraySource, Dataset, DatasetInfo, Normalization
from bsnn_jax.data.sequences import rows_as_steps


def test_seq_digits_feeds_one_normalized_row_per_step():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    images = sklearn_datasets.load_digits().images  # [1797, 8, 8], 0..16
    ds = data.load("seq_digits")
    assert (ds.info.timesteps, ds.info.input_shape, ds.info.num_train, ds.info.num_test) == (8, (1, 1, 8), 1437, 360)
    batch = next(iter(data.make_loader(ds, "test", batch_size=5, shard=(0, 1))))
    assert batch["image"].shape == (5, 8, 1, 1, 8)
    train = images[:1437] / 16
    expected = (images[1437:1442] / 16 - train.mean()) / train.std()
    np.testing.assert_allclose(batch["image"][:, :, 0, 0, :], expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(batch["label"], sklearn_datasets.load_digits().target[1437:1442])


def test_rgb_rows_keep_each_channels_normalization():
    x = np.arange(2 * 3 * 2 * 3, dtype=np.uint8).reshape(2, 3, 2, 3)  # [N, H=3, W=2, C=3]
    norm = Normalization(1.0, (1.0, 2.0, 3.0), (1.0, 2.0, 4.0))
    ds = Dataset(DatasetInfo("rgb", 2, (3, 2, 3), None, 2, 2), ArraySource(x, [0, 1]), ArraySource(x, [0, 1]), norm)
    seq = rows_as_steps(ds, "seq_rgb")
    assert (seq.info.timesteps, seq.info.input_shape) == (3, (1, 1, 6))
    out = seq.normalization(np.stack([seq.test[i]["image"] for i in range(2)]))
    # step t, feature w * C + c  ==  pixel (t, w, c) normalized with channel c's mean and std
    expected = (x - np.array([1.0, 2.0, 3.0])) / np.array([1.0, 2.0, 4.0])
    np.testing.assert_allclose(out[:, :, 0, 0, :], expected.reshape(2, 3, 6))
    with pytest.raises(ValueError, match="already has a time axis"):
        rows_as_steps(seq, "twice")


def test_runs_with_rate_or_latency_read_intensities_in_0_1():
    """The probability encoders get pixels scaled to [0, 1] (digits: 0..16 / 16), not standardized ones."""
    from bsnn_jax import configs
    from bsnn_jax.train import setup

    base = [("dataset.name", "seq_digits"), ("model.timesteps", "8")]
    for encoder in ("rate", "latency"):
        ds = setup.load_dataset(configs.load("seq_fashion_mlp", [*base, ("model.encoder", encoder)]))
        raw = np.stack([ds.train[i]["image"] for i in range(50)])
        np.testing.assert_allclose(ds.normalization(raw), raw / 16.0, rtol=1e-6)
    standardized = setup.load_dataset(configs.load("seq_fashion_mlp", base))
    assert np.min(standardized.normalization(raw)) < 0  # direct keeps the standardization
