"""The peers' reference net in PyTorch against ours (when the peers are installed)."""

import jax
import numpy as np
import pytest
from flax import nnx

from bsnn_jax import models
from bsnn_jax.bench.workloads import WORKLOADS


@pytest.mark.parametrize("framework", ["torch", "snntorch", "spikingjelly"])
def test_peer_reference_net_has_our_parameter_count(framework):
    # The peers come with `make bench` (the bench extra), not with `make test`: CI skips this
    # check, and it runs wherever the peers are installed.
    pytest.importorskip("torch")
    pytest.importorskip({"torch": "torch", "snntorch": "snntorch", "spikingjelly": "spikingjelly.activation_based"}[framework])
    from bsnn_jax.bench import torch_worker

    workload = next(w for w in WORKLOADS.values() if w.framework == framework)
    peer = torch_worker.build(workload)
    ours = models.create("reference", variant="bsnn", timesteps=1, rngs=0)
    ours_count = sum(np.size(v) for v in jax.tree.leaves(nnx.state(ours, nnx.Param)))
    assert sum(p.numel() for p in peer.parameters()) == ours_count
