"""DVS-CIFAR10's two training augmentations against the same random draws done by hand."""

import numpy as np
import pytest

from bsnn_jax.data import dvs


@pytest.fixture(scope="module")
def frames():
    return np.random.default_rng(0).random((3, 48, 48, 2)).astype(np.float32)


def test_crop_flip_pads_4_crops_48_then_flips(frames):
    out = dvs.dvs_cifar10_augmentation("crop_flip")(frames, np.random.default_rng(7))
    rng = np.random.default_rng(7)  # the same draws: top, left, then the flip
    top, left, flip = int(rng.integers(9)), int(rng.integers(9)), rng.random() < 0.5
    padded = np.zeros((3, 56, 56, 2), np.float32)
    padded[:, 4:52, 4:52] = frames
    want = padded[:, top : top + 48, left : left + 48]
    np.testing.assert_array_equal(out, want[:, :, ::-1] if flip else want)
    assert out.shape == frames.shape


def test_flip_roll_is_tets(frames):
    out = dvs.dvs_cifar10_augmentation("flip_roll")(frames, np.random.default_rng(3))
    rng = np.random.default_rng(3)
    flip = rng.random() < 0.5
    dy, dx = rng.integers(-5, 6, size=2)
    want = np.roll(frames[:, :, ::-1] if flip else frames, (int(dy), int(dx)), axis=(1, 2))
    np.testing.assert_array_equal(out, want)


def test_unknown_augmentation_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="crop_flip"):
        dvs.load_dvs("dvs_cifar10", tmp_path, augmentation="crop")
