"""The BSO Table 2 rows carry the released code's effective settings, and `bsnn train` writes them
to config.json (stand-in data made here: CIFAR-shaped and DVS-shaped .npz files)."""

import json

import numpy as np
import pytest

from bsnn_jax import cli, configs
from bsnn_jax.configs.bso_table2 import BSO_ROWS

# hamingsi/BSO @cb01fd4: CustomScheduler (x0.1 every 50 epochs), train_cifar.sh --autoaug, the
# FP lr never annealed, OnlineLIFNode's adaptive trace, DVSCifar10_Dowload's crop + flip.
CODE = {
    "optimizer.flip.decay_every_epochs": 50,
    "optimizer.flip.decay_factor": 0.1,
    "schedule.name": "constant",
    "train.trace": "adaptive",
    "optimizer.flip.eps_outside_sqrt": True,
    "optimizer.flip.eps": 1e-10,
}


def field(config: dict, key: str):
    for part in key.split("."):
        config = config[part]
    return config


def expected(row: str) -> dict:
    cifar = BSO_ROWS[row]["dataset"].startswith("cifar")
    return CODE | {"dataset.autoaugment": cifar, "dataset.cutout": cifar, "dataset.dvs_augmentation": "flip_roll" if cifar else "crop_flip"}


@pytest.mark.parametrize("row", sorted(BSO_ROWS))
def test_row_has_the_codes_settings_and_the_paper_text_one_override_away(row):
    config = configs.get(row).to_dict()
    for key, value in expected(row).items():
        assert field(config, key) == value, key
    paper = configs.load(row, [("schedule.name", "cosine"), ("train.trace", "constant"), ("optimizer.flip.decay_every_epochs", "0")])
    assert (paper.schedule.name, paper.train.trace, paper.optimizer.flip.decay_every_epochs) == ("cosine", "constant", 0)


def write_standins(folder):
    rng = np.random.default_rng(0)
    labels = {"y_train": np.arange(8) % 10, "y_test": np.arange(4) % 10}
    np.savez(
        folder / "cifar.npz",
        x_train=rng.integers(0, 256, (8, 32, 32, 3), np.uint8),
        x_test=rng.integers(0, 256, (4, 32, 32, 3), np.uint8),
        **labels,
    )
    frames = lambda n: rng.poisson(0.3, (n, 10, 48, 48, 2)).astype(np.float32)  # noqa: E731
    np.savez(folder / "dvs.npz", x_train=frames(8), x_test=frames(4), **labels)


@pytest.mark.slow  # one online VGG-11 compile per row: ~1 min each on 2 cores
@pytest.mark.parametrize("row", sorted(BSO_ROWS))
def test_train_writes_the_codes_settings_to_config_json(row, tmp_path):
    write_standins(tmp_path)
    data = "cifar.npz" if BSO_ROWS[row]["dataset"].startswith("cifar") else "dvs.npz"
    args = ["train", "--config", row, "--workdir", str(tmp_path / "run"), f"--config.dataset.name=npz:{tmp_path / data}"]
    args += ["--config.num_epochs=1", "--config.steps_per_epoch=2", "--config.batch_size=4", "--config.eval_batch_size=4"]
    assert cli.main([*args, "--config.mesh.num_devices=1"]) == 0
    written = json.loads((tmp_path / "run" / "config.json").read_text())
    for key, value in expected(row).items():
        assert field(written, key) == value, key
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 1
