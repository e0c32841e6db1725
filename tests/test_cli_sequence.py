"""``bsnn train`` on a ``[N, L]`` signal npz and a ``[N, T, F]`` sequence npz, with no model code."""

import json

import numpy as np
import pytest

from bsnn_jax import cli

TINY = [
    "--config.dataset.num_threads=1",
    "--config.num_epochs=1",
    "--config.batch_size=16",
    "--config.eval_batch_size=32",
    "--config.mesh.num_devices=1",
    "--config.optimizer.learning_rate=0.05",
]


def write(path, x, y, **extra):
    np.savez(path, x_train=x, y_train=y, x_test=x[:32], y_test=y[:32], **extra)
    return f"npz:{path}"


@pytest.mark.parametrize(
    "arrays, model, timesteps",
    [
        ("signal", "conv1d", 2),
        ("signal", "mlp", 2),
        ("sequence", "mlp", 6),
    ],
)
def test_train_from_the_cli(tmp_path, arrays, model, timesteps):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 64)
    if arrays == "signal":
        x = (rng.normal(size=(64, 24)) + y[:, None]).astype(np.float32)  # [N, L]
        name = write(tmp_path / "d.npz", x, y)
    else:
        x = (rng.normal(size=(64, 6, 5)) + y[:, None, None]).astype(np.float32)  # [N, T, F]
        name = write(tmp_path / "d.npz", x, y, layout="sequence")
    workdir = tmp_path / "run"
    args = ["train", "--config", "demo", "--workdir", str(workdir), f"--config.dataset.name={name}"]
    args += [f"--config.model.name={model}", f"--config.model.timesteps={timesteps}", *TINY]
    assert cli.main(args) == 0
    row = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["step"] == 64 // 16 and np.isfinite(row["train_loss"]) and 0 <= row["test_accuracy"] <= 1


def test_sequence_length_mismatch_names_the_field(tmp_path, capsys):
    x = np.zeros((64, 6, 5), np.float32)
    name = write(tmp_path / "d.npz", x, np.arange(64) % 2, layout="sequence")
    args = ["train", "--config", "demo", "--workdir", str(tmp_path / "run"), f"--config.dataset.name={name}", "--config.model.name=mlp"]
    assert cli.main(args + TINY) == 2
    assert "set model.timesteps=6 (--config.model.timesteps=6)" in capsys.readouterr().err


def test_rate_encoder_runs_repeat_exactly_from_the_seed(tmp_path):
    """``model.encoder=rate`` draws new spikes every step from the model's key (model state, from the
    seed): two runs with the same seed log the same numbers."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 64)
    x = np.clip(rng.normal(0.5, 0.2, size=(64, 12)) + 0.1 * y[:, None], 0, 1).astype(np.float32)  # intensities [N, L]
    name = write(tmp_path / "d.npz", x, y)

    def run(workdir, seed):
        args = ["train", "--config", "demo", "--workdir", str(workdir), f"--config.dataset.name={name}", "--config.model.name=mlp"]
        args += ["--config.model.timesteps=4", "--config.model.encoder=rate", f"--config.seed={seed}", *TINY]
        assert cli.main(args) == 0
        row = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])
        return {k: v for k, v in row.items() if "loss" in k or "accuracy" in k or "rate" in k}

    first, again = run(tmp_path / "a", 0), run(tmp_path / "b", 0)
    assert first == again and len(first) >= 4 and np.isfinite(first["train_loss"])
