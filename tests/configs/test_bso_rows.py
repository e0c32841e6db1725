"""The BSO Table 2 rows carry the released code's effective settings, and `bsnn train` writes them
to config.json (stand-in data from experiments/recipe_evidence.py, written in tmp_path)."""

import json

import pytest

from bsnn_jax import cli, configs
from bsnn_jax.configs.bso_table2 import BSO_ROWS
from experiments import recipe_evidence

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
    dataset = BSO_ROWS[row]["dataset"]
    cifar = dataset.startswith("cifar")
    settings = CODE | {"dataset.autoaugment": cifar, "dataset.cutout": cifar}
    settings["dataset.dvs_augmentation"] = "crop_flip" if dataset == "dvs_cifar10" else "flip_roll"
    if dataset == "imagenet":  # train_im.py: CustomScheduler(decay_epochs=20), birealnet18
        settings |= {"optimizer.flip.decay_every_epochs": 20, "model.stem": "bireal"}
    if "_bso_" in row:  # Bop.step(reset=True), the code's BSO branch
        settings |= {"optimizer.binary": "bso", "optimizer.flip.reset_momentum": True}
    return settings


@pytest.mark.parametrize("row", sorted(BSO_ROWS))
def test_row_has_the_codes_settings_and_the_paper_text_one_override_away(row):
    config = configs.get(row).to_dict()
    for key, value in expected(row).items():
        assert field(config, key) == value, key
    paper = configs.load(row, [("schedule.name", "cosine"), ("train.trace", "constant"), ("optimizer.flip.decay_every_epochs", "0")])
    assert (paper.schedule.name, paper.train.trace, paper.optimizer.flip.decay_every_epochs) == ("cosine", "constant", 0)


def run_evidence_command(row: str, folder, *extra: str) -> dict:
    """``bsnn train --config ROW --config.num_epochs=1 --config.steps_per_epoch=2`` on the stand-in
    data of experiments/recipe_evidence.py (tfds's real format for CIFAR/ImageNet); the written config.json."""
    workdir = folder / "run"
    assert cli.main(recipe_evidence.command(row, workdir, folder / "data", extra)) == 0
    assert len((workdir / "metrics.jsonl").read_text().splitlines()) == 1
    return json.loads((workdir / "config.json").read_text())


def test_train_on_cifar_standin_writes_the_rows_recipe_to_config_json(tmp_path):
    """The evidence command of one T-BSO row through the real CIFAR pipeline (AutoAugment, Cutout),
    with small_cnn for VGG-11 so it compiles in seconds: every recipe field is the row's own."""
    (tmp_path / "data").mkdir()
    written = run_evidence_command("cifar10_vgg11_tbso_t2", tmp_path, "--config.model.name=small_cnn")
    for key, value in expected("cifar10_vgg11_tbso_t2").items():
        assert field(written, key) == value, key


@pytest.mark.slow  # one online VGG-11 / ResNet-18 compile per row: ~1 min each on 2 cores
@pytest.mark.parametrize("row", sorted(BSO_ROWS))
def test_train_writes_the_codes_settings_to_config_json(row, tmp_path):
    (tmp_path / "data").mkdir()
    written = run_evidence_command(row, tmp_path)
    for key, value in expected(row).items():
        assert field(written, key) == value, key
