"""snnTorch's NIR importer runs our export of a trained demo-size vanilla BSNN (``make test-interop``).

Trains ``bsnn train --config demo`` as a vanilla BSNN for 300 steps on Fashion-MNIST, exports it
with ``to_nir(dt=1e-4)`` (snnTorch's ``import_from_nir`` integrates at dt = 1e-4), loads it with
``snntorch.import_nir.import_from_nir`` and asks for the class bsnn_jax predicts on >= 99% of the
first ``BSNN_INTEROP_EXAMPLES`` test images (default 1000; snnTorch runs one image at a time).
Marked ``interop``: excluded from ``make test``, it needs torch and snntorch.
"""

import os

import pytest

from bsnn_jax import cli
from bsnn_jax.export.nir_interop import snntorch_agreement  # imports snntorch only when called

pytestmark = pytest.mark.interop


def test_snntorch_predicts_like_bsnn_jax(tmp_path):
    workdir = tmp_path / "demo_bsnn"
    args = ["--config.model.variant=bsnn", "--config.num_epochs=1", "--config.steps_per_epoch=300"]
    assert cli.main(["train", "--config", "demo", "--workdir", str(workdir), *args]) == 0
    result = snntorch_agreement(str(workdir), examples=int(os.environ.get("BSNN_INTEROP_EXAMPLES", "1000")))
    print(f"\nsnnTorch import_from_nir vs bsnn_jax: {result}")
    assert result["agreement"] >= 0.99
    assert result["bsnn_jax_accuracy"] > 0.7  # a trained model, not a constant one
