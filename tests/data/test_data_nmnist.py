"""N-MNIST from .bin files written here in the real 5-byte event format."""

import pytest

from bsnn_jax import data

pytest.importorskip("tonic")


def write_bin(path, events):
    """N-MNIST's format: per event x, y, then polarity (bit 7) and a 23-bit timestamp in microseconds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = bytearray()
    for x, y, p, ts in events:
        raw += bytes([x, y, (p << 7) | ((ts >> 16) & 127), (ts >> 8) & 255, ts & 255])
    path.write_bytes(bytes(raw))


def test_nmnist_frames_count_events_per_polarity_and_window(tmp_path):
    # duration 0..1000 us in T = 2 windows: the first two events in window 0, the third in window 1
    events = [(1, 2, 1, 0), (1, 2, 1, 10), (33, 0, 0, 700), (5, 5, 0, 1000)]
    write_bin(tmp_path / "NMNIST" / "Train" / "7" / "00001.bin", events)
    write_bin(tmp_path / "NMNIST" / "Train" / "3" / "00002.bin", events[:3])
    write_bin(tmp_path / "NMNIST" / "Test" / "0" / "00003.bin", events)
    ds = data.load("nmnist", data_dir=tmp_path, timesteps=2)
    assert (ds.info.input_shape, ds.info.timesteps, ds.info.num_train, ds.info.num_test) == ((34, 34, 2), 2, 2, 1)
    record = ds.train[1]  # files in folder order: 3/, then 7/
    assert record["label"] == 7 and record["image"].shape == (2, 34, 34, 2)
    frames = record["image"]
    assert frames[0, 2, 1, 1] == 2  # [t, y, x, polarity]
    assert frames[1, 0, 33, 0] == 1
    assert frames[0].sum() == 2 and frames.sum() in (3, 4)  # tonic may drop an event exactly at the end


def test_missing_nmnist_says_where_to_put_it(tmp_path):
    with pytest.raises(data.DataNotFoundError, match=r"(?s)expected .*NMNIST/Train/<digit>/\*.bin.*Download train.zip"):
        data.load("nmnist", data_dir=tmp_path)
