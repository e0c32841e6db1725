"""User errors of the ``bsnn`` command: one ``error: ...`` line that names the problem and the fix,
exit status 2, no traceback; ``bsnn --debug`` or ``BSNN_DEBUG=1`` raise instead.

Nothing here trains: every error is found before the first training step (sklearn digits,
small_cnn, T=2 where a run is built).
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bsnn_jax
from bsnn_jax import cli, configs, export, models, train
from bsnn_jax.train import config as config_lib

DIGITS = ["--config.dataset.name=digits", "--config.mesh.num_devices=1", "--config.dataset.num_threads=1", "--config.progress=false"]


def fails(capsys, argv, *, one_line=True) -> str:
    """Runs ``bsnn ARGV`` in this process; checks exit status 2 and the report; returns stderr."""
    capsys.readouterr()
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and lines[0].startswith("error: ")
    assert sum(line.startswith("error:") for line in lines) == 1
    if one_line:
        assert len(lines) == 1, err
    return err


def train_args(tmp_path, *overrides, config="demo"):
    return ["train", "--config", config, "--workdir", str(tmp_path / "run"), *DIGITS, *overrides]


@pytest.mark.parametrize(
    "overrides, message",
    [  # the closest key, or the one the typo abbreviates
        (["--config.optimizer.lr=0.1"], "'optimizer.lr' in --config.optimizer.lr. Did you mean 'optimizer.learning_rate'?"),
        (["--config.modle.name=x"], "unknown config key 'modle.name' in --config.modle.name. Did you mean 'model'?"),
    ],
)
def test_unknown_config_key(tmp_path, capsys, overrides, message):
    assert message in fails(capsys, train_args(tmp_path, *overrides))


def test_unknown_config_name(tmp_path, capsys):
    err = fails(capsys, train_args(tmp_path, config="dmeo"))
    assert "unknown config 'dmeo'. Did you mean 'demo'? Known configs: cifar100_resnet19_t2," in err


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["--config.num_epochs=two"], "--config.num_epochs='two': expected int"),
        (["--config.batch_size=0"], "batch_size must be an integer >= 1, got 0"),
        (["--config.model.neuron.reset=hrad"], "unknown reset 'hrad' (model.neuron.reset); known: hard, soft"),
        (["--config.optimizer.binary=bso", "--config.model.variant=fp"], "model.variant='fp' has none; use variant bsnn or agmm"),
    ],
)
def test_bad_config_value(tmp_path, capsys, overrides, message):
    assert message in fails(capsys, train_args(tmp_path, *overrides))


def test_unknown_model(tmp_path, capsys):
    err = fails(capsys, train_args(tmp_path, "--config.model.name=resnet20"))
    assert "unknown model 'resnet20' (model.name); known: " in err and "resnet19" in err


def test_unknown_dataset(tmp_path, capsys):
    err = fails(capsys, train_args(tmp_path, "--config.dataset.name=mnist"))
    assert "unknown dataset 'mnist' (dataset.name); known: fashion_mnist, digits," in err


IMAGES = {f"x_{s}": np.zeros((4, 8, 8), np.uint8) for s in ("train", "test")} | {f"y_{s}": np.zeros(4, int) for s in ("train", "test")}


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return f"--config.dataset.name=npz:{path}"


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"x": np.zeros((4, 8, 8), np.uint8)}, "missing arrays ['x_train', 'y_train', 'x_test', 'y_test']; it has ['x']"),
        ({**IMAGES, "x_train": np.zeros((4, 8, 8), np.int32)}, "x_train has dtype int32; images must be uint8 (0..255) or float"),
        ({**IMAGES, "y_train": np.zeros((4, 10))}, "y_train has shape (4, 10) and dtype float64; expected a 1-d integer array"),
    ],
)
def test_bad_npz(tmp_path, capsys, arrays, message):
    err = fails(capsys, train_args(tmp_path, _npz(tmp_path / "mine.npz", **arrays)))
    assert f"{tmp_path / 'mine.npz'}: {message}" in err


@pytest.mark.parametrize(
    "dataset, message",
    [
        ("cifar10", "tfds dataset 'cifar10' is not prepared for random access under {dir}"),
        ("dvs_gesture", "DVS-Gesture not found under {dir}"),
    ],
)
def test_missing_data_says_how_to_get_it(tmp_path, capsys, dataset, message):
    """DataNotFoundError: the one error whose message keeps its lines (the commands that prepare the data)."""
    empty = tmp_path / "data"
    err = fails(capsys, train_args(tmp_path, f"--config.dataset.name={dataset}", f"--config.dataset.data_dir={empty}"), one_line=False)
    assert err.startswith("error: " + message.format(dir=empty))
    assert "--config.dataset.data_dir=DIR points at the data" in err


def test_workdir_holding_another_run_is_refused_and_left_alone(tmp_path, capsys):
    other = configs.load("demo", [("dataset.name", "digits"), ("seed", "7")])
    saved = tmp_path / "run" / "config.json"
    saved.parent.mkdir()
    saved.write_text(config_lib.to_json(other))
    err = fails(capsys, train_args(tmp_path))
    assert "holds a different run (seed: 7 there, 0 now). Nothing was changed. Use a new --workdir" in err
    assert saved.read_text() == config_lib.to_json(other)
    assert [p.name for p in saved.parent.rglob("*") if p.is_file()] == ["config.json"]


def test_corrupt_checkpoint(tmp_path, capsys):
    """A checkpoint cut short: its step folder holds a truncated ``state`` and nothing else."""
    run = tmp_path / "run"
    (run / "checkpoints" / "3" / "state").mkdir(parents=True)
    (run / "checkpoints" / "3" / "state" / "manifest.ocdbt").write_bytes(b"\0garbage" * 4)
    saved = configs.load("demo", [("dataset.name", "digits"), ("mesh.num_devices", "1")])
    (run / "config.json").write_text(config_lib.to_json(saved))
    err = fails(capsys, ["evaluate", "--workdir", str(run)])
    assert f"checkpoint 3 in {run / 'checkpoints'} cannot be read" in err and "use a new --workdir" in err


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """An untrained small_cnn for 8x8 digits written as a .bsnn file, and a copy with one byte changed."""
    path = tmp_path_factory.mktemp("export") / "model.bsnn"
    description = {"name": "small_cnn", "variant": "agmm", "timesteps": 2, "num_classes": 10, "input_shape": [8, 8, 1], "neuron": {}}
    export.save(models.create("small_cnn", timesteps=2, input_shape=(8, 8, 1)), description, path)
    blob = bytearray(path.read_bytes())
    blob[-10] ^= 0xFF
    damaged = path.with_name("damaged.bsnn")
    damaged.write_bytes(bytes(blob))
    return path, damaged


def test_corrupt_bsnn_file(tmp_path, capsys, packed):
    np.savez(tmp_path / "in.npz", x=np.zeros((3, 8, 8), np.uint8))
    err = fails(capsys, ["predict", "--model", str(packed[1]), str(tmp_path / "in.npz")])
    assert f"{packed[1]}: checksum mismatch" in err and "export it again" in err
    err = fails(capsys, ["predict", "--model", str(tmp_path / "none.bsnn"), str(tmp_path / "in.npz")])
    assert "none.bsnn does not exist; write it with bsnn export" in err


def test_predict_input_that_does_not_fit_the_model(tmp_path, capsys, packed):
    np.savez(tmp_path / "in.npz", x=np.zeros((3, 28, 28), np.uint8))
    err = fails(capsys, ["predict", "--model", str(packed[0]), str(tmp_path / "in.npz")])
    assert "holds images of shape (3, 28, 28, 1), but" in err and "takes [N, 8, 8, 1]" in err
    np.savez(tmp_path / "bad.npz", images=np.zeros((3, 8, 8), np.uint8))
    assert "put the images under 'x'" in fails(capsys, ["predict", "--model", str(packed[0]), str(tmp_path / "bad.npz")])


def test_input_too_small_for_the_model(tmp_path, capsys):
    """[N, 1, 40] sequences cannot pass small_cnn's two 2x2 poolings: the fix, in one line."""
    rng = np.random.default_rng(0)
    arrays = {f"x_{s}": rng.random((32, 1, 40), np.float32) for s in ("train", "test")}
    arrays |= {f"y_{s}": rng.integers(0, 3, 32) for s in ("train", "test")}
    err = fails(capsys, train_args(tmp_path, _npz(tmp_path / "seq.npz", **arrays)))
    assert "input_shape (1, 40, 1) is too small for small_cnn: its 2 2x2 poolings need frames of at least 4x4" in err
    assert "such as resnet19" in err
    err = fails(capsys, ["report", "--model", "vgg11", "--input-shape", "4,4,3"])
    assert "too small for vgg11: its 3 2x2 poolings need frames of at least 8x8" in err


def test_nan_loss_is_reported_in_one_line(tmp_path, capsys, monkeypatch):
    def diverges(config, workdir, **kwargs):
        raise train.NonFiniteLossError("nan loss at step 3 (epoch 1); the run stopped. Try a lower learning rate")

    monkeypatch.setattr(train, "fit", diverges)
    assert "error: nan loss at step 3" in fails(capsys, train_args(tmp_path))


def test_debug_flag_and_environment_show_the_traceback(tmp_path, monkeypatch):
    with pytest.raises(config_lib.ConfigError, match="unknown config 'dmeo'"):
        cli.main(["--debug", *train_args(tmp_path, config="dmeo")])
    monkeypatch.setenv("BSNN_DEBUG", "1")
    with pytest.raises(config_lib.ConfigError, match="unknown config key 'optimizer.lr'"):
        cli.main(train_args(tmp_path, "--config.optimizer.lr=1"))


def test_a_real_process_resolves_a_config_name_from_any_cwd_and_exits_2_without_traceback(tmp_path):
    """``--config demo`` comes from the installed package, not from files under the cwd."""
    root = Path(bsnn_jax.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    argv = ["train", "--config", "demo", "--workdir", "run", "--config.dataset.name=npz:missing.npz", "--config.mesh.num_devices=1"]
    done = subprocess.run([sys.executable, "-m", "bsnn_jax.cli", *argv], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: missing.npz does not exist; write it with np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)"
    ]
