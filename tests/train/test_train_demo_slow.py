"""The built-in demo end to end (about 3 minutes on 2 CPU cores): ``pytest -m slow``."""

import pytest
from rich.console import Console

from bsnn_jax import configs, train


@pytest.mark.slow
def test_demo_reaches_the_bs4nn_accuracy(tmp_path):
    config = configs.load("demo", [("mesh.num_devices", "1")])
    summary = train.fit(config, tmp_path, console=Console(quiet=True))
    assert summary["test_accuracy"] >= 0.873  # BS4NN, a published binary-weight SNN on Fashion-MNIST
    assert 0 < summary["firing_rate"] < 0.5 and summary["model_size_mb"] < 0.3
