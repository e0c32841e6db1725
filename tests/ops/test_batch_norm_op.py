"""ops.batch_norm and nn.BatchNorm on it: Flax's BatchNorm outputs, running statistics and
gradients, and central finite differences of a float64 NumPy batch norm."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import random_inputs  # tests/ is on sys.path (rootdir conftest)
from flax import nnx
from hlo_work import elementwise_work  # tests/ is on sys.path (rootdir conftest)

from bsnn_jax.nn import BatchNorm
from bsnn_jax.ops import batch_norm, lif_scan

SHAPE = (3, 2, 4, 4, 5)  # [T, B, H, W, C]


@pytest.fixture(scope="module")
def inputs():
    x = random_inputs.normal(0, SHAPE) * 2.0 + 1.5  # off-centre, so mean and variance both matter
    weights = random_inputs.normal(1, SHAPE)  # a loss that weighs every output differently
    scale, bias = jnp.linspace(0.5, 2.0, SHAPE[-1]), jnp.linspace(-1.0, 1.0, SHAPE[-1])
    return x, weights, scale, bias


def _loss(y, weights):
    return jnp.sum(jnp.tanh(y) * weights)


def _pair(scale, bias):
    """Ours and Flax's BatchNorm with the same parameters and PyTorch's 0.1 update rate."""
    modules = BatchNorm(SHAPE[-1], rngs=nnx.Rngs(0)), nnx.BatchNorm(SHAPE[-1], momentum=0.9, rngs=nnx.Rngs(0))
    for m in modules:
        m.scale[...], m.bias[...] = scale, bias
        m.mean[...], m.var[...] = jnp.full(SHAPE[-1:], 0.3), jnp.full(SHAPE[-1:], 2.0)  # not the init values
    return modules


def test_layer_matches_flax_outputs_statistics_and_gradients(inputs):
    x, weights, scale, bias = inputs
    ours, flax_bn = _pair(scale, bias)
    grad = nnx.grad(lambda m, v: _loss(m(v, use_running_average=False), weights), argnums=(0, 1))
    (g_ours, gx_ours), (g_flax, gx_flax) = grad(ours, x), grad(flax_bn, x)
    np.testing.assert_allclose(gx_ours, gx_flax, rtol=1e-5, atol=1e-6)
    for name in ("scale", "bias"):
        np.testing.assert_allclose(g_ours[name][...], g_flax[name][...], rtol=1e-5, atol=1e-5)
    # One training call each updated the running statistics: the same EMA of the batch statistics.
    np.testing.assert_array_equal(ours.mean[...], flax_bn.mean[...])
    np.testing.assert_array_equal(ours.var[...], flax_bn.var[...])
    np.testing.assert_array_equal(ours(x, use_running_average=False), flax_bn(x, use_running_average=False))


def test_running_statistics_are_the_exponential_average_by_hand(inputs):
    x, _, scale, bias = inputs
    ours, _ = _pair(scale, bias)
    ours(x, use_running_average=False)
    xs = np.asarray(x, np.float64).reshape(-1, SHAPE[-1])
    np.testing.assert_allclose(ours.mean[...], 0.9 * 0.3 + 0.1 * xs.mean(0), rtol=1e-5)
    np.testing.assert_allclose(ours.var[...], 0.9 * 2.0 + 0.1 * xs.var(0), rtol=1e-5)


def _numpy_batch_norm(x, scale, bias, eps=1e-5):
    """Float64 reference: normalise over every axis but the last; also the batch mean and variance."""
    axes = tuple(range(x.ndim - 1))
    mean, var = x.mean(axes), x.var(axes)
    return (x - mean) / np.sqrt(var + eps) * scale + bias, mean, var


def test_gradients_match_finite_differences(inputs):
    x, weights, scale, bias = inputs
    # The statistics' outputs get cotangents too (a loss that reads the batch mean and variance).
    c_mean, c_var = np.linspace(1.0, 2.0, SHAPE[-1]), np.linspace(-1.0, 0.5, SHAPE[-1])

    def loss64(x, scale, bias):
        y, mean, var = _numpy_batch_norm(x, scale, bias)
        return np.sum(np.tanh(y) * np.asarray(weights, np.float64)) + np.sum(c_mean * mean) + np.sum(c_var * var)

    def loss(x, scale, bias):
        y, mean, var = batch_norm(x, scale, bias)
        return _loss(y, weights) + jnp.sum(c_mean * mean) + jnp.sum(c_var * var)

    grads = jax.grad(loss, argnums=(0, 1, 2))(x, scale, bias)
    args = [np.asarray(a, np.float64) for a in (x, scale, bias)]
    rng = np.random.default_rng(0)
    for arg, grad in zip(range(3), grads, strict=True):
        for flat in rng.choice(args[arg].size, size=4, replace=False):
            index = np.unravel_index(flat, args[arg].shape)
            plus, minus = [a.copy() for a in args], [a.copy() for a in args]
            plus[arg][index] += 1e-6
            minus[arg][index] -= 1e-6
            numeric = (loss64(*plus) - loss64(*minus)) / 2e-6
            np.testing.assert_allclose(grad[index], numeric, rtol=2e-3, atol=2e-4)


def test_masked_call_falls_back_to_flax(inputs):
    x, _, scale, bias = inputs
    ours, flax_bn = _pair(scale, bias)
    mask = jnp.arange(SHAPE[0])[:, None, None, None, None] < 2  # the last time step does not count
    np.testing.assert_array_equal(ours(x, use_running_average=False, mask=mask), flax_bn(x, use_running_average=False, mask=mask))
    np.testing.assert_array_equal(ours.mean[...], flax_bn.mean[...])


def test_bad_shapes_name_the_shapes():
    with pytest.raises(ValueError, match=r"scale, bias \[C\]"):
        batch_norm(jnp.ones((4, 3)), jnp.ones(2), jnp.ones(3))


def test_small_network_gradients_equal_the_flax_and_autodiff_path(monkeypatch):
    """A small BSNN's gradients with ops.batch_norm and the fused LIF against Flax's BatchNorm and
    autodiff through lif_step (the path before issue 20), within float rounding."""
    from bsnn_jax import models

    x = random_inputs.normal(2, (2, 8, 8, 3))
    labels = jnp.array([1, 3])

    def grads(neuron):
        model = models.create("small_cnn", variant="bsnn", timesteps=2, input_shape=(8, 8, 3), neuron=neuron, rngs=0)

        def loss(m):
            return -jnp.mean(jax.nn.log_softmax(m(x).mean(0))[jnp.arange(2), labels])

        # jitted: one program instead of op-by-op dispatch (~25 s here); traced after the patch
        return nnx.state(nnx.jit(nnx.grad(loss))(model), nnx.Param)

    new = grads({"fused": True})
    monkeypatch.setattr(BatchNorm, "__call__", nnx.BatchNorm.__call__)
    old = grads({"fused": False})
    for (path, a), (_, b) in zip(jax.tree.leaves_with_path(new), jax.tree.leaves_with_path(old), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6, err_msg=jax.tree_util.keystr(path))


def _bn_lif_work(t: int) -> int:
    """Elementwise work of the gradient of BN over T folded into the batch, then an unrolled LIF."""
    b, c = 4, 8
    scale, bias = jnp.linspace(0.5, 2.0, c), jnp.linspace(-1.0, 1.0, c)

    def loss(x):
        y = batch_norm(x, scale, bias)[0].reshape(t, b, c)
        return jnp.sum(lif_scan(y, 0.5, 1.0, reset="soft", surrogate="sigmoid", beta=4.0) * x.reshape(t, b, c))

    return elementwise_work(jax.jit(jax.grad(loss)).lower(jnp.ones((t * b, c))).compile().as_text())


def test_backward_work_is_linear_in_t():
    # The LIF's gradient arrives as T per-step pieces, so XLA splits BN's per-channel sums into T
    # partial sums and, unless they are computed once, adds them up again inside every element of
    # the input gradient: T^2 work (2.8x per doubling of T on VGG-11 at T = 16 -> 32).
    short, long = _bn_lif_work(16), _bn_lif_work(32)
    assert long <= 2.1 * short, (short, long)
