"""SHD / SSC read from small HDF5 files written here in the real layout (spikes/times, spikes/units, labels)."""

import numpy as np
import pytest

from bsnn_jax import data

h5py = pytest.importorskip("h5py")


def write_h5(path, recordings, labels):
    """The Heidelberg files' layout: variable-length float times (s) and uint16 units per recording."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        times = f.create_dataset("spikes/times", (len(recordings),), dtype=h5py.vlen_dtype(np.float32))
        units = f.create_dataset("spikes/units", (len(recordings),), dtype=h5py.vlen_dtype(np.uint16))
        for i, (t, u) in enumerate(recordings):
            times[i], units[i] = np.asarray(t, np.float32), np.asarray(u, np.uint16)
        f["labels"] = np.asarray(labels, np.uint8)


def test_shd_bins_spikes_into_10ms_counts_by_hand(tmp_path):
    first = ([0.0, 0.005, 0.0125, 0.999, 1.2], [0, 0, 3, 699, 5])  # the 1.2 s spike is after the binned second
    second = ([0.5, 0.5, 0.5], [7, 7, 8])
    write_h5(tmp_path / "SHD" / "shd_train.h5", [first, second], [19, 0])
    write_h5(tmp_path / "SHD" / "shd_test.h5", [second], [3])
    ds = data.load("shd", data_dir=tmp_path)
    assert (ds.info.num_classes, ds.info.input_shape, ds.info.timesteps, ds.info.num_train, ds.info.num_test) == (
        20,
        (1, 1, 700),
        100,
        2,
        1,
    )
    x = ds.train[0]["image"]
    assert x.shape == (100, 1, 1, 700) and ds.train[0]["label"] == 19
    expected = np.zeros((100, 700), np.float32)
    expected[0, 0], expected[1, 3], expected[99, 699] = 2, 1, 1  # 0 and 5 ms in bin 0; 12.5 ms in bin 1
    np.testing.assert_array_equal(x[:, 0, 0], expected)
    batch = next(iter(data.make_loader(ds, "train", batch_size=2, shard=(0, 1), seed=0)))
    assert batch["image"].shape == (2, 100, 1, 1, 700) and sorted(batch["image"].sum(axis=(1, 2, 3, 4))) == [3.0, 4.0]


def test_ssc_with_other_bins(tmp_path):
    rec = ([0.1, 0.6, 0.61], [1, 2, 2])
    write_h5(tmp_path / "SSC" / "ssc_train.h5", [rec], [34])
    write_h5(tmp_path / "SSC" / "ssc_test.h5", [rec], [1])
    ds = data.load("ssc", data_dir=tmp_path, timesteps=4)  # 250 ms bins
    assert (ds.info.num_classes, ds.info.timesteps) == (35, 4)
    counts = ds.test[0]["image"][:, 0, 0]
    assert counts[0, 1] == 1 and counts[2, 2] == 2 and counts.sum() == 3


def test_missing_or_foreign_files_say_what_to_do(tmp_path):
    with pytest.raises(
        data.DataNotFoundError, match=r"(?s)expected .*SHD/shd_train.h5 .*Download https://zenkelab.org/datasets/shd_train.h5.zip"
    ):
        data.load("shd", data_dir=tmp_path)
    for split in ("train", "test"):
        path = tmp_path / "SSC" / f"ssc_{split}.h5"
        path.parent.mkdir(exist_ok=True)
        with h5py.File(path, "w") as f:
            f["labels"] = np.zeros(2, np.uint8)
    with pytest.raises(data.DataNotFoundError, match=r"not an SHD/SSC file: it lacks \['spikes/times', 'spikes/units'\]"):
        data.load("ssc", data_dir=tmp_path)
