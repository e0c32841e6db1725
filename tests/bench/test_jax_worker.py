"""The bsnn_jax worker: the ANN bound's network, and the step it times trained as the peers'."""

import dataclasses

import jax
import numpy as np
import optax
import pytest
from flax import nnx

from bsnn_jax import models
from bsnn_jax.bench import jax_worker
from bsnn_jax.bench.jax_worker import ReLU, relu_instead_of_lif
from bsnn_jax.bench.workloads import Workload
from bsnn_jax.nn import LIF

TINY = Workload("tiny_snn_t2", "bsnn_jax", "small_cnn", "bsnn", timesteps=2, batch_size=4, input_shape=(8, 8, 1))


def count(model, kind):
    return sum(isinstance(m, kind) for _, m in nnx.iter_graph(model))


def is_trace(x):
    return isinstance(x, optax.TraceState)


def test_ann_bound_replaces_every_lif_by_relu_and_keeps_the_parameters():
    snn = models.create("small_cnn", variant="bsnn", timesteps=1, input_shape=(8, 8, 1), rngs=0)
    ann = models.create("small_cnn", variant="bsnn", timesteps=1, input_shape=(8, 8, 1), rngs=0)
    lifs = count(ann, LIF)
    relu_instead_of_lif(ann)
    assert lifs == 3 and count(ann, LIF) == 0 and count(ann, ReLU) == lifs
    same = jax.tree.map(np.array_equal, nnx.state(snn, nnx.Param), nnx.state(ann, nnx.Param))
    assert all(jax.tree.leaves(same))
    x = np.random.default_rng(0).uniform(-1, 1, (4, 8, 8, 1)).astype(np.float32)
    ann.fc.kernel[...] = np.eye(*ann.fc.kernel.shape, dtype=np.float32)  # logits = the first features
    features = np.asarray(ann(x))[0]
    assert features.min() >= 0 and len(np.unique(features)) > 2  # ReLU outputs, not 0/1 spikes
    with pytest.raises(ValueError, match="no LIF"):
        relu_instead_of_lif(ann)


@pytest.mark.parametrize("ann", [False, True], ids=["snn", "ann_bound"])
def test_step_is_sgd_with_momentum_at_0_1_on_t_frames_or_the_ann_bound_on_t_times_b(ann):
    workload = dataclasses.replace(TINY, ann=ann)
    training, batch = jax_worker.build(workload)
    assert batch["image"].shape == (8 if ann else 4, 8, 8, 1)  # the ANN bound: T*B images, once each
    model = training.defs.model(training.state.params, training.state.model_state)
    assert (count(model, LIF), count(model, ReLU)) == ((0, 3) if ann else (3, 0))
    before = jax.tree.map(np.array, training.state.params)  # copied: the step donates the state
    state, _ = training.step(training.state, batch)
    (momentum,) = [s for s in jax.tree.leaves(state.opt_state, is_leaf=is_trace) if is_trace(s)]
    # First step of SGD with momentum: the trace is the gradient, the update -0.1 times it (the
    # peers' torch.optim.SGD(lr=0.1, momentum=0.9) takes the same first step).
    expected = jax.tree.map(lambda p, g: p - 0.1 * g, before, momentum.trace)
    assert all(jax.tree.leaves(jax.tree.map(lambda a, b: np.allclose(a, b, atol=1e-6), state.params, expected)))
