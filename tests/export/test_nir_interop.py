"""snnTorch's NIR importer runs our export of a trained demo-size vanilla BSNN (``make test-interop``).

Trains ``bsnn train --config demo`` as a vanilla BSNN for 300 steps on Fashion-MNIST, exports it
with ``to_nir(dt=1e-4)`` (snnTorch's ``import_from_nir`` integrates at dt = 1e-4), loads it with
``snntorch.import_nir.import_from_nir`` and asks for the class bsnn_jax predicts on >= 99% of the
test images: all 10,000 (about 75 s in batches of 500; ``BSNN_INTEROP_EXAMPLES=N`` for the first N).
Marked ``interop``: excluded from ``make test``, it needs torch and snntorch.
"""

import os

import pytest
import random_inputs  # tests/ is on sys.path (rootdir conftest)

from bsnn_jax import cli
from bsnn_jax.export.nir_interop import snntorch_agreement  # imports snntorch only when called

pytestmark = pytest.mark.interop


def test_snntorch_predicts_like_bsnn_jax(tmp_path):
    workdir = tmp_path / "demo_bsnn"
    # one device: the test suite's conftest gives the process 8 CPU devices, which the demo's eval batch does not split over
    args = ["--config.model.variant=bsnn", "--config.num_epochs=1", "--config.steps_per_epoch=300", "--config.mesh.num_devices=1"]
    assert cli.main(["train", "--config", "demo", "--workdir", str(workdir), *args]) == 0
    result = snntorch_agreement(str(workdir), examples=int(os.environ.get("BSNN_INTEROP_EXAMPLES", "0")) or None)
    print(f"\nsnnTorch import_from_nir vs bsnn_jax: {result}")
    assert result["agreement"] >= 0.99 and result["logits_within_1e-4"] >= 0.99
    assert result["bsnn_jax_accuracy"] > 0.7  # a trained model, not a constant one


def test_snntorch_runs_resnet19_residual_graph():
    """ResNet-19 (binary, 8x8 input): snnTorch sums each node's inputs, as NIR defines, so the shortcuts
    exported as edges give bsnn_jax's logits at every time step."""
    import numpy as np
    import snntorch.utils
    import torch
    from snntorch.import_nir import import_from_nir

    from bsnn_jax import export, models
    from bsnn_jax.export.nir_interop import batch_flatten

    model = models.create("resnet19", variant="bsnn", timesteps=2, num_classes=10, input_shape=(8, 8, 3))
    model.eval()
    x = 3 * np.random.default_rng(0).normal(size=(4, 8, 8, 3)).astype(np.float32)
    ours = np.asarray(model(x))
    net = import_from_nir(export.to_nir(model, dt=1e-4))
    theirs = []
    with torch.no_grad():
        for image in x:
            snntorch.utils.reset(net)
            step = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
            theirs.append(np.stack([net(step)[0].numpy() for _ in range(2)]))
    np.testing.assert_allclose(np.stack(theirs, axis=1), ours, atol=1e-4 * np.abs(ours).max())
    # the batched path of the 10,000-image check: the same logits with the batch axis kept by batch_flatten
    assert batch_flatten(net) == 1
    snntorch.utils.reset(net)
    batch = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    with torch.no_grad():
        batched = np.stack([net(batch)[0].numpy() for _ in range(2)])
    np.testing.assert_allclose(batched, ours, atol=1e-4 * np.abs(ours).max())


def test_snntorch_modules_run_the_recurrent_mlp_cycle():
    """A recurrent binary MLP's cycles (lifs.i -> lifs.i.recurrent -> lifs.i), run by snnTorch's own node map
    (LIF -> snn.Leaky, Linear/Affine -> torch.nn.Linear) under nirtorch's executor, which feeds a cycle the
    previous step's output: bsnn_jax's logits at every step. snnTorch 1.0.0's ``import_from_nir`` itself is not
    used: its RLeaky rewrite wires the subgraph input into W_rec (``lif(W_rec(x + s[t-1]))``) and keys every
    subgraph by the name before the first dot (two recurrent layers collide), so it computes another network."""
    import nir
    import nirtorch
    import numpy as np
    import torch
    from flax import nnx
    from snntorch import import_nir

    from bsnn_jax import export
    from bsnn_jax.models.common import VARIANTS, NetOptions
    from bsnn_jax.models.mlp import SpikingMLP
    from bsnn_jax.nn import default_time_fold

    steps = 6
    opts = NetOptions(VARIANTS["bsnn"], steps, time_fold=default_time_fold())
    model = SpikingMLP((8, 6), (6,), 3, opts, recurrent=True, rngs=nnx.Rngs(0))
    model.eval()
    for lif in model.lifs:  # a stronger V than at initialization, so it changes the logits
        lif.recurrent.kernel[...] = 4 * lif.recurrent.kernel[...]
    x = 3 * np.asarray(random_inputs.normal(1, (4, 6)), np.float32)
    ours = np.asarray(model(x))
    node_map = {kind: lambda n: import_nir._nir_to_snntorch_module(n, init_hidden=True) for kind in (nir.Affine, nir.Linear, nir.LIF)}
    net = nirtorch.nir_to_torch(export.to_nir(model, dt=1e-4), node_map)
    theirs, state = [], None
    with torch.no_grad():
        for _ in range(steps):
            out, state = net(torch.from_numpy(x), state)
            theirs.append(out.numpy())
    np.testing.assert_allclose(np.stack(theirs), ours, atol=1e-5 * np.abs(ours).max())
