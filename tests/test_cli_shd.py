"""``bsnn train --config shd_mlp`` on SHD files written here in the real HDF5 layout, and without them."""

import json

import h5py
import numpy as np

from bsnn_jax import cli

TINY = [
    "--config.dataset.num_threads=1",
    "--config.num_epochs=1",
    "--config.batch_size=4",
    "--config.eval_batch_size=4",
    "--config.mesh.num_devices=1",
    "--config.model.timesteps=7",  # 7 bins of 200 ms over the config's 1.4 s
    "--config.progress=false",
]


def write_shd(path, n, seed):
    """The Heidelberg layout: per recording, variable-length spike times (s) and channels; uint8 labels.
    Class k's spikes fall on channels 100 k .. 100 k + 9, spread over 1.4 s."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        times = f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(np.float32))
        units = f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.uint16))
        for i, k in enumerate(labels):
            times[i] = np.sort(rng.uniform(0, 1.4, 50)).astype(np.float32)
            units[i] = (100 * k + rng.integers(0, 10, 50)).astype(np.uint16)
        f["labels"] = labels.astype(np.uint8)


def test_shd_mlp_trains_two_steps_from_the_cli(tmp_path):
    write_shd(tmp_path / "data" / "SHD" / "shd_train.h5", 8, seed=0)
    write_shd(tmp_path / "data" / "SHD" / "shd_test.h5", 4, seed=1)
    workdir = tmp_path / "run"
    args = ["train", "--config", "shd_mlp", "--workdir", str(workdir), f"--config.dataset.data_dir={tmp_path / 'data'}", *TINY]
    assert cli.main(args) == 0
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 2 and np.isfinite(rows[-1]["train_loss"]) and 0 <= rows[-1]["test_accuracy"] <= 1
    saved = json.loads((workdir / "config.json").read_text())
    assert (saved["dataset"]["name"], saved["dataset"]["duration"], saved["model"]["timesteps"]) == ("shd", 1.4, 7)


def test_missing_shd_files_are_one_error_line_saying_what_to_download(tmp_path, capsys):
    args = ["train", "--config", "shd_mlp", "--workdir", str(tmp_path / "run"), f"--config.dataset.data_dir={tmp_path}", *TINY]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: SHD not found: expected ") and "shd_train.h5" in err
    assert "https://zenkelab.org/datasets/shd_train.h5.zip" in err and "download=True" in err


def test_the_config_bins_1_4_seconds(tmp_path):
    """shd_mlp's dataset.duration reaches the reader: a spike at 1.3 s is in bin 6 of 7 (200 ms bins),
    where the reader's default 1 s would drop it."""
    from bsnn_jax import configs
    from bsnn_jax.train import setup

    for split in ("train", "test"):
        path = tmp_path / "SHD" / f"shd_{split}.h5"
        path.parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(path, "w") as f:
            f.create_dataset("spikes/times", (1,), dtype=h5py.vlen_dtype(np.float32))[0] = np.array([0.1, 1.3], np.float32)
            f.create_dataset("spikes/units", (1,), dtype=h5py.vlen_dtype(np.uint16))[0] = np.array([3, 5], np.uint16)
            f["labels"] = np.zeros(1, np.uint8)
    config = configs.load("shd_mlp", [("dataset.data_dir", str(tmp_path)), ("model.timesteps", "7")])
    counts = setup.load_dataset(config).train[0]["image"][:, 0, 0]
    expected = np.zeros((7, 700), np.float32)
    expected[0, 3] = expected[6, 5] = 1
    np.testing.assert_array_equal(counts, expected)
