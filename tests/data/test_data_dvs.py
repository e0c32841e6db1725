"""DVS event frames: binning counted by plain loops, resizing against Pillow, tiny recordings in tonic's layouts."""

import numpy as np
import pytest
from PIL import Image

from bsnn_jax import data
from bsnn_jax.data import augment, dvs

GESTURE_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("p", bool), ("t", np.int64)])


def count_frames(events, timesteps, sensor=128):
    """Equal-count binning as dvs.py documents it (tonic's ``ToFrame(n_event_bins=T)``), by hand.

    ``events`` are ``(x, y, p, t)`` tuples in time order. Frame k counts events
    ``k * (N // T) .. (k + 1) * (N // T) - 1``, the last ``N mod T`` are dropped; the count of
    an event lands at ``[k, y, x, p]`` (channels-last, polarity last).
    """
    per_frame = len(events) // timesteps
    frames = np.zeros((timesteps, sensor, sensor, 2), np.float32)
    for k in range(timesteps):
        for x, y, p, _ in events[k * per_frame : (k + 1) * per_frame]:
            frames[k, int(y), int(x), int(p)] += 1
    return frames


def pil_resize(frames, size=48):
    """Each ``[H, W]`` plane resized by Pillow itself (bilinear, antialiased when shrinking)."""
    t, _, _, c = frames.shape
    out = np.zeros((t, size, size, c), np.float32)
    for k in range(t):
        for p in range(c):
            out[k, :, :, p] = np.asarray(Image.fromarray(frames[k, :, :, p]).resize((size, size), Image.BILINEAR))
    return out


def as_structured(events):
    return np.array([tuple(e) for e in events], GESTURE_DTYPE)


def test_count_frames_matches_a_hand_worked_example():
    """Loop reference and library against counts worked out by hand: 7 events into T=3 frames
    of 7 // 3 = 2 events each, the 7th dropped."""
    events = [(1, 2, 1, 0), (1, 2, 1, 1), (5, 0, 0, 2), (5, 0, 1, 3), (127, 127, 0, 4), (1, 2, 1, 5), (3, 3, 1, 6)]
    expected = np.zeros((3, 128, 128, 2), np.float32)  # [t, y, x, polarity]
    expected[0, 2, 1, 1] = 2
    expected[1, 0, 5, 0] = 1
    expected[1, 0, 5, 1] = 1
    expected[2, 127, 127, 0] = 1
    expected[2, 2, 1, 1] = 1
    np.testing.assert_array_equal(count_frames(events, 3), expected)
    np.testing.assert_array_equal(dvs.events_to_frames(as_structured(events), 3, size=128), expected)


@pytest.mark.parametrize(("n", "timesteps"), [(7, 3), (40, 4), (53, 5), (9, 9)])
def test_event_count_binning_matches_loops(n, timesteps):
    """Library frames at sensor size against ``count_frames``'s loops over the same events."""
    rng = np.random.default_rng(n)
    # Few distinct pixels, so pixels repeat within a frame and counts exceed 1.
    events = [(int(rng.integers(120, 128)), int(rng.integers(0, 6)), int(rng.integers(2)), t) for t in range(n)]
    frames = dvs.events_to_frames(as_structured(events), timesteps, size=128)
    assert frames.dtype == np.float32
    np.testing.assert_array_equal(frames, count_frames(events, timesteps))


def test_frames_are_resized_like_pillow_bilinear():
    """48x48 frames against Pillow's own bilinear resize of the 128x128 ones."""
    rng = np.random.default_rng(0)
    n = 5000
    events = np.zeros(n, GESTURE_DTYPE)
    events["x"], events["y"] = rng.integers(0, 128, n), rng.integers(0, 128, n)
    events["p"], events["t"] = rng.integers(0, 2, n), np.arange(n)
    small = dvs.events_to_frames(events, 4)
    full = dvs.events_to_frames(events, 4, size=128)
    assert small.shape == (4, 48, 48, 2) and small.dtype == np.float32
    np.testing.assert_allclose(small, pil_resize(full), rtol=1e-5, atol=1e-5)
    uniform = np.ones((1, 128, 128, 2), np.float32)
    np.testing.assert_allclose(augment.resize(uniform, (48, 48)), 1.0, rtol=1e-6)


# Every field distinct from the others and beyond int16 for t, so a swap of x and y, a
# negated or swapped polarity, or a narrowed timestamp changes what is read.
KNOWN_GESTURE_EVENTS = [(17, 93, 1, 40_000), (120, 4, 0, 40_001), (3, 66, 0, 123_456), (101, 127, 1, 9_999_999)]


# tonic's DVSGesture reads the arrays with any numeric dtype, and its docs do not name the
# release's, so the reader must get the fields right from an integer and a float array alike.
@pytest.mark.parametrize("dtype", [np.int64, np.float64], ids=["int64", "float64"])
def test_gesture_reader_returns_x_y_p_t_as_written(tmp_path, dtype):
    """The reader's fields against the columns of an ``[N, 4]`` x, y, polarity, t (ms) array
    written with ``np.save``, the layout of tonic's preprocessed release."""
    path = tmp_path / "DVSGesture/ibmGestureTrain/user01_led/4.npy"
    path.parent.mkdir(parents=True)
    np.save(path, np.array(KNOWN_GESTURE_EVENTS, dtype))
    events = dvs.read_gesture_events(path)
    assert events.dtype.names == ("x", "y", "p", "t")
    x, y, p, t = (list(column) for column in zip(*KNOWN_GESTURE_EVENTS, strict=True))
    assert events["x"].tolist() == x
    assert events["y"].tolist() == y
    assert events["p"].tolist() == [bool(v) for v in p]
    assert events["t"].tolist() == t


def gesture_events(seed, n=40):
    rng = np.random.default_rng(seed)
    return [(int(rng.integers(128)), int(rng.integers(128)), int(rng.integers(2)), t) for t in range(n)]


@pytest.fixture
def gesture_root(tmp_path, write_gesture_npy):
    root = tmp_path / "raw"
    recordings = {
        "ibmGestureTrain/user01_fluorescent/0.npy": 0,
        "ibmGestureTrain/user01_fluorescent/10.npy": 10,
        "ibmGestureTrain/user02_led/3.npy": 3,
        "ibmGestureTest/user24_led/5.npy": 5,
    }
    for i, relative in enumerate(recordings):
        write_gesture_npy(root / "DVSGesture" / relative, gesture_events(i))
    return root


def test_dvs_gesture_frames_and_cache(tmp_path, gesture_root, monkeypatch):
    """Cached frames against the loop binning of the events written, resized by Pillow."""
    cache = tmp_path / "cache"
    ds = data.load("dvs_gesture", data_dir=gesture_root, timesteps=4, cache_dir=cache)
    assert ds.info == data.DatasetInfo("dvs_gesture", 11, (48, 48, 2), 4, 3, 1)
    assert ds.train_transform is None  # a flip would swap left- and right-hand gestures
    assert [ds.train[i]["label"] for i in range(3)] == [0, 10, 3]  # sorted paths
    # train[1] is user01_fluorescent/10.npy, the second recording written (seed 1).
    expected = pil_resize(count_frames(gesture_events(1), 4))
    assert ds.train[1]["image"].shape == (4, 48, 48, 2)
    np.testing.assert_allclose(ds.train[1]["image"], expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ds.test[0]["image"], pil_resize(count_frames(gesture_events(3), 4)), rtol=1e-5, atol=1e-5)

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the cache should have been reused")

    monkeypatch.setattr(dvs, "build_frame_cache", no_rebuild)
    data.load("dvs_gesture", data_dir=gesture_root, timesteps=4, cache_dir=cache)
    # Raw data deleted after caching: the cache alone is enough.
    for f in (gesture_root / "DVSGesture").rglob("*.npy"):
        f.unlink()
    again = data.load("dvs_gesture", data_dir=gesture_root, timesteps=4, cache_dir=cache)
    np.testing.assert_allclose(again.train[1]["image"], expected, rtol=1e-5, atol=1e-5)


def test_dvs_gesture_cache_is_rebuilt_when_recordings_change(tmp_path, gesture_root, write_gesture_npy):
    cache = tmp_path / "cache"
    data.load("dvs_gesture", data_dir=gesture_root, timesteps=2, cache_dir=cache)
    write_gesture_npy(gesture_root / "DVSGesture/ibmGestureTest/user25_led/7.npy", gesture_events(9))
    ds = data.load("dvs_gesture", data_dir=gesture_root, timesteps=2, cache_dir=cache)
    assert ds.info.num_test == 2 and ds.test[1]["label"] == 7
    np.testing.assert_allclose(ds.test[1]["image"], pil_resize(count_frames(gesture_events(9), 2)), rtol=1e-5, atol=1e-5)
    assert not list(cache.glob("*.tmp-*"))


def test_event_batches_have_a_time_axis(tmp_path, gesture_root):
    ds = data.load("dvs_gesture", data_dir=gesture_root, timesteps=3, cache_dir=tmp_path / "c")
    batch = next(iter(data.make_loader(ds, batch_size=2, shard=(0, 1))))
    assert batch["image"].shape == (2, 3, 48, 48, 2) and batch["image"].dtype == np.float32
    assert batch["image"].sum() > 0


def cifar_events(seed, n=30):
    rng = np.random.default_rng(seed)
    return [(1000 + 10 * k, int(rng.integers(128)), int(rng.integers(128)), bool(rng.integers(2))) for k in range(n)]


def test_dvs_cifar10_reads_aedat4_and_splits_per_class(tmp_path, write_aedat4):
    root = tmp_path / "raw"
    for name in ("airplane", "cat"):
        for i in range(10):
            write_aedat4(root / "CIFAR10DVS" / name / f"cifar10_{name}_{i}.aedat4", cifar_events(i))
    events = dvs.read_cifar10dvs_events(root / "CIFAR10DVS/cat/cifar10_cat_3.aedat4")
    assert events.dtype.names == ("t", "x", "y", "p")
    assert [tuple(e) for e in events.tolist()] == cifar_events(3)

    ds = data.load("dvs_cifar10", data_dir=root, timesteps=2, cache_dir=tmp_path / "cache")
    assert ds.info == data.DatasetInfo("dvs_cifar10", 10, (48, 48, 2), 2, 18, 2)
    train_labels = [ds.train[i]["label"] for i in range(18)]
    assert train_labels.count(0) == 9 and train_labels.count(3) == 9  # ceil(0.9 * 10) per class
    assert sorted(ds.test[i]["label"] for i in range(2)) == [0, 3]
    # The split is fixed: a fresh listing gives the same one.
    first = dvs._list_cifar10dvs(root)
    assert first == dvs._list_cifar10dvs(root)
    assert not {p for p, _ in first["train"]} & {p for p, _ in first["test"]}


def test_dvs_cifar10_train_augmentation_is_flip_then_roll(tmp_path, write_aedat4, scripted_rng):
    root = tmp_path / "raw"
    write_aedat4(root / "CIFAR10DVS/dog/a.aedat4", cifar_events(0))
    ds = data.load("dvs_cifar10", data_dir=root, timesteps=1, cache_dir=tmp_path / "cache")
    frames = np.arange(2 * 4 * 4 * 2, dtype=np.float32).reshape(2, 4, 4, 2)
    out = ds.train_transform(frames, scripted_rng(0.2, 1, -2))  # flip (0.2 < 0.5), roll dy=1, dx=-2
    np.testing.assert_array_equal(out, np.roll(frames[:, :, ::-1], (1, -2), axis=(1, 2)))


def test_missing_dvs_data_names_files_and_folders(tmp_path):
    with pytest.raises(data.DataNotFoundError) as error:
        data.load("dvs_gesture", data_dir=tmp_path)
    message = str(error.value)
    assert f"{tmp_path}/DVSGesture/ibmGestureTrain/user<NN>_<lighting>/<label>.npy" in message
    assert "ibmGestureTrain.tar.gz" in message and "ibmGestureTest.tar.gz" in message
    with pytest.raises(data.DataNotFoundError) as error:
        data.load("dvs_cifar10", data_dir=tmp_path)
    message = str(error.value)
    assert f"{tmp_path}/CIFAR10DVS/<class>/*.aedat4" in message and "CIFAR10DVS.zip" in message


def test_badly_named_recordings_are_errors(tmp_path, write_gesture_npy, write_aedat4):
    write_gesture_npy(tmp_path / "DVSGesture/ibmGestureTrain/user01_led/11.npy", gesture_events(0))
    write_gesture_npy(tmp_path / "DVSGesture/ibmGestureTest/user02_led/1.npy", gesture_events(0))
    with pytest.raises(ValueError, match="label 0..10"):
        data.load("dvs_gesture", data_dir=tmp_path)
    write_aedat4(tmp_path / "CIFAR10DVS/plane/a.aedat4", cifar_events(0))
    with pytest.raises(ValueError, match="must be one of the class names"):
        data.load("dvs_cifar10", data_dir=tmp_path)
