"""DVS event frames: binning counted by hand, resizing against Pillow, tiny recordings in tonic's layouts."""

import numpy as np
import pytest
from PIL import Image

from bsnn_jax import data
from bsnn_jax.data import augment, dvs

GESTURE_DTYPE = np.dtype([("x", np.int16), ("y", np.int16), ("p", bool), ("t", np.int64)])


def test_event_count_binning_by_hand():
    # (x, y, p, t): 7 events into T=3 frames of 7 // 3 = 2 events each; the 7th is dropped.
    events = np.array(
        [(1, 2, 1, 0), (1, 2, 1, 1), (5, 0, 0, 2), (5, 0, 1, 3), (127, 127, 0, 4), (1, 2, 1, 5), (3, 3, 1, 6)],
        GESTURE_DTYPE,
    )
    frames = dvs.events_to_frames(events, 3, size=128)  # no resize: raw counts
    expected = np.zeros((3, 128, 128, 2), np.float32)  # [t, y, x, polarity]
    expected[0, 2, 1, 1] = 2
    expected[1, 0, 5, 0] = 1
    expected[1, 0, 5, 1] = 1
    expected[2, 127, 127, 0] = 1
    expected[2, 2, 1, 1] = 1
    np.testing.assert_array_equal(frames, expected)


def test_frames_are_resized_like_pillow_bilinear():
    rng = np.random.default_rng(0)
    n = 5000
    events = np.zeros(n, GESTURE_DTYPE)
    events["x"], events["y"] = rng.integers(0, 128, n), rng.integers(0, 128, n)
    events["p"], events["t"] = rng.integers(0, 2, n), np.arange(n)
    small = dvs.events_to_frames(events, 4)
    full = dvs.events_to_frames(events, 4, size=128)
    assert small.shape == (4, 48, 48, 2) and small.dtype == np.float32
    for t in range(4):
        for p in range(2):
            pil = Image.fromarray(full[t, ..., p], mode="F").resize((48, 48), Image.BILINEAR)
            np.testing.assert_allclose(small[t, ..., p], np.asarray(pil), rtol=1e-5, atol=1e-5)
    uniform = np.ones((1, 128, 128, 2), np.float32)
    np.testing.assert_allclose(augment.resize(uniform, (48, 48)), 1.0, rtol=1e-6)


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
    cache = tmp_path / "cache"
    ds = data.load("dvs_gesture", data_dir=gesture_root, timesteps=4, cache_dir=cache)
    assert ds.info == data.DatasetInfo("dvs_gesture", 11, (48, 48, 2), 4, 3, 1)
    assert ds.train_transform is None  # a flip would swap left- and right-hand gestures
    assert [ds.train[i]["label"] for i in range(3)] == [0, 10, 3]  # sorted paths
    # Cached frames are the binning of each recording as tonic reads it.
    recording = gesture_root / "DVSGesture/ibmGestureTrain/user01_fluorescent/10.npy"
    expected = dvs.events_to_frames(dvs.read_gesture_events(recording), 4)
    np.testing.assert_array_equal(ds.train[1]["image"], expected)
    assert ds.train[1]["image"].shape == (4, 48, 48, 2)

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the cache should have been reused")

    monkeypatch.setattr(dvs, "build_frame_cache", no_rebuild)
    data.load("dvs_gesture", data_dir=gesture_root, timesteps=4, cache_dir=cache)
    # Raw data deleted after caching: the cache alone is enough.
    for f in (gesture_root / "DVSGesture").rglob("*.npy"):
        f.unlink()
    again = data.load("dvs_gesture", data_dir=gesture_root, timesteps=4, cache_dir=cache)
    np.testing.assert_array_equal(again.train[1]["image"], expected)


def test_dvs_gesture_cache_is_rebuilt_when_recordings_change(tmp_path, gesture_root, write_gesture_npy):
    cache = tmp_path / "cache"
    data.load("dvs_gesture", data_dir=gesture_root, timesteps=2, cache_dir=cache)
    write_gesture_npy(gesture_root / "DVSGesture/ibmGestureTest/user25_led/7.npy", gesture_events(9))
    ds = data.load("dvs_gesture", data_dir=gesture_root, timesteps=2, cache_dir=cache)
    assert ds.info.num_test == 2 and ds.test[1]["label"] == 7
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
