"""``bsnn export --format nir`` on a trained vanilla BSNN run (sklearn digits, small_cnn, T=2).

The written file is read back with ``nir.read`` and run by the numpy NIR interpreter of
``test_nir`` on the test images as stored (the graph's first node normalizes them): its
predictions must be the trained model's on >= 99.9% of them (a membrane within float32
rounding of the threshold may fire in one network only; see ``test_export_run``).
"""

import json

import nir
import numpy as np
from export.test_nir import run_graph  # tests/ is on sys.path (rootdir conftest)
from rich.console import Console
from train.conftest import tiny_config

from bsnn_jax import cli, export
from bsnn_jax.train import fit
from bsnn_jax.train.restore import restore


def test_cli_export_nir(tmp_path_factory, capsys):
    workdir = tmp_path_factory.mktemp("nir") / "run"
    fit(tiny_config(**{"model.variant": "bsnn", "num_epochs": 1}), workdir, console=Console(quiet=True))
    out = workdir.parent / "model.nir"
    assert cli.main(["export", "--workdir", str(workdir), "--out", str(out), "--format", "nir", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["input_shape"] == [1, 8, 8] and result["output_shape"] == [10]
    assert result["nodes"]["LIF"] == 3 and result["nodes"]["Conv2d"] == 4  # 3 convs + the normalization

    restored = restore(workdir)
    images = restored.dataset.test.images
    graph = nir.read(out)
    logits, _ = run_graph(graph, images.transpose(0, 3, 1, 2).astype(np.float32), restored.config.model.timesteps)
    want = export.batched_logits(export.mean_logits_fn(restored.model), restored.dataset.normalization(images), 128)
    assert np.mean(logits.mean(axis=0).argmax(-1) == want.argmax(-1)) >= 0.999

    assert cli.main(["export", "--workdir", str(workdir), "--out", str(out), "--format", "nir"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert cli.main(["export", "--workdir", str(workdir), "--out", str(out), "--format", "nir", "--force"]) == 0
    assert "LIF as nir.LIF with tau = dt/(1 - tau_b)" in capsys.readouterr().out
