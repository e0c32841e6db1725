import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bsnn_jax import models
from bsnn_jax.metrics import StepFlipRatio, count_flips, flip_kernels, flip_ratio, gradient_stats, signs


def test_eq8_pools_layers_by_weight_count():
    e0 = {"a": jnp.array([0.5, -0.2, 0.0, 0.3]), "b": jnp.array([[1.0, -1.0], [-1.0, 1.0]])}
    e1 = {"a": jnp.array([-0.5, -0.1, -0.0, 0.3]), "b": jnp.array([[1.0, 1.0], [-1.0, 1.0]])}
    # a: 0.5 -> -0.5 flips; 0.0 -> -0.0 does not (sign(0) = +1 both); b: one flip. 2 of 8.
    assert float(flip_ratio(e0, e1)) == pytest.approx(2 / 8)
    assert float(flip_ratio(signs(e0), signs(e1))) == pytest.approx(2 / 8)
    with pytest.raises(ValueError, match="different layers"):
        flip_ratio(e0, {"a": e1["a"]})


def test_eq8_counts_net_flips_while_larq_counts_every_step():
    # one weight flips at step 1 and flips back at step 2: no net flip over the epoch,
    # but Larq's per-step mean sees 1/2 at step 1 and 1/2 at step 2, 0 at step 3.
    seq = [jnp.array([0.1, 0.2]), jnp.array([-0.1, 0.2]), jnp.array([0.1, 0.2]), jnp.array([0.1, 0.3])]
    assert float(flip_ratio({"w": seq[0]}, {"w": seq[-1]})) == 0.0
    metric = StepFlipRatio()
    for before, after in itertools.pairwise(seq):
        metric.update(*count_flips({"w": before}, {"w": after}))
    assert metric.result() == pytest.approx((0.5 + 0.5 + 0.0) / 3)
    metric.reset()
    assert np.isnan(metric.result())


def test_count_flips_is_jittable():
    f = jax.jit(lambda a, b: count_flips({"w": a}, {"w": b})[0])
    assert int(f(jnp.array([1.0, -1.0, 2.0]), jnp.array([-1.0, -1.0, -2.0]))) == 2


def test_flip_kernels_are_the_binarized_layers_in_every_variant():
    shape = dict(timesteps=2, input_shape=(8, 8, 3))
    binary = models.create("resnet19", variant="bsnn", rngs=0, **shape)
    fp = models.create("resnet19", variant="fp", rngs=0, **shape)
    from flax import nnx

    from bsnn_jax.nn import BinaryParam

    binary_paths = {".".join(map(str, p[:-1])) for p, _ in nnx.to_flat_state(nnx.state(binary, BinaryParam))}
    assert set(flip_kernels(binary)) == binary_paths == set(flip_kernels(fp))
    assert len(binary_paths) == 16


def test_gradient_stats():
    g = {"w": jnp.array([1.0, 2.0, 3.0, 6.0])}
    mean, var = gradient_stats(g)["w"]
    assert float(mean) == 3.0 and float(var) == pytest.approx(np.var([1, 2, 3, 6]))
