"""BatchNorm running statistics, which evaluation and the exporter's BN folding both read, against
a numpy exponential moving average over the pooled ``[T*B, H, W]`` statistics.

Which variance: the running variance is the *biased* batch variance (divide by n = T*B*H*W, Flax's
rule), not PyTorch's ``running_var``, which takes the unbiased one (divide by n - 1). The spec's
"plain BN2d" would be unbiased. The two differ by the factor n / (n - 1): below 0.04% in every BN
layer of the demo (n >= T*B*7*7 = 3136), but 4% on the tiny batches here, so these tests tell the
two apart and pin the biased one.
"""

import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from bsnn_jax import nn
from bsnn_jax.train.state import create_train_state, eval_view
from bsnn_jax.train.step import make_train_step

MOMENTUM = 0.9  # PyTorch's momentum=0.1: running = 0.9 * running + 0.1 * batch statistic
EPS = 1e-5


def batches(k, shape, seed=0):
    """k time-major batches [T, B, H, W, C] with a different mean and scale per channel and per call."""
    rng = np.random.default_rng(seed)
    c = shape[-1]
    return [(rng.normal(size=shape) * rng.uniform(0.5, 3.0, c) + rng.uniform(-2.0, 2.0, c)).astype(np.float32) for _ in range(k)]


def numpy_ema(xs, *, unbiased):
    """Running mean/var after one BN call per x: statistics over every axis but the channel one,
    i.e. over T*B*H*W values per channel; start 0 and 1 as PyTorch and Flax."""
    mean, var = np.zeros(xs[0].shape[-1]), np.ones(xs[0].shape[-1])
    for x in xs:
        pooled = np.asarray(x, np.float64).reshape(-1, x.shape[-1])  # [T*B*H*W, C]
        mean = MOMENTUM * mean + (1 - MOMENTUM) * pooled.mean(0)
        var = MOMENTUM * var + (1 - MOMENTUM) * pooled.var(0, ddof=1 if unbiased else 0)
    return mean, var


def test_running_statistics_are_the_biased_ema_of_the_pooled_time_and_batch_statistics():
    """After 3 training-mode calls: running mean/var equal the numpy EMA (momentum 0.9) of the
    per-channel mean and biased variance over T*B*H*W; the output of each call is normalised with
    that call's own statistics; evaluation mode then normalises with the running ones."""
    shape = (2, 3, 2, 2, 4)  # T, B, H, W, C: n = 24 per channel, so n / (n - 1) = 1.043
    xs = batches(3, shape)
    bn = nn.BatchNorm(4, rngs=nnx.Rngs(0))
    rng = np.random.default_rng(1)
    scale, bias = rng.uniform(0.5, 2.0, 4).astype(np.float32), rng.normal(size=4).astype(np.float32)
    bn.scale[...], bn.bias[...] = jnp.asarray(scale), jnp.asarray(bias)
    for x in xs:
        y = np.asarray(bn(jnp.asarray(x)))
        pooled = x.reshape(-1, 4).astype(np.float64)
        expected = (x - pooled.mean(0)) / np.sqrt(pooled.var(0) + EPS) * scale + bias
        np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)

    mean, var = numpy_ema(xs, unbiased=False)
    np.testing.assert_allclose(np.asarray(bn.mean[...]), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(bn.var[...]), var, rtol=1e-5)
    # PyTorch's running_var would be this; the library differs from it by the factor n / (n - 1)
    _, torch_var = numpy_ema(xs, unbiased=True)
    assert np.all(np.abs(np.asarray(bn.var[...]) / torch_var - 1) > 1e-3)

    x = batches(1, shape, seed=2)[0]
    y = np.asarray(eval_view(bn)(jnp.asarray(x)))
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + EPS) * scale + bias, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(bn.var[...]), var, rtol=1e-5)  # evaluation updates nothing


class _BNNet(nnx.Module):
    """BN straight on the input frames, so its statistics are those of the data alone; a binary
    1x1 conv and a spatial mean give the [T, B, K] logits a training step needs."""

    def __init__(self, channels, classes, rngs):
        self.bn = nn.BatchNorm(channels, rngs=rngs)
        self.conv = nn.BinaryConv(channels, classes, 1, rngs=rngs)

    def __call__(self, x):
        return jnp.mean(self.conv(self.bn(x)), axis=(2, 3))


def test_the_training_step_carries_the_running_statistics_of_event_frames():
    """The jitted BPTT step: its model state after k steps on event-frame batches [B, T, H, W, C]
    holds the numpy EMA of the statistics pooled over T and B (biased variance)."""
    T, B, H, W, C = 2, 4, 3, 3, 3
    frames = batches(3, (T, B, H, W, C), seed=3)
    tx = optax.sgd(0.1)
    defs, state = create_train_state(_BNNet(C, 5, nnx.Rngs(0)), tx)
    step = make_train_step(defs, tx, donate=False)
    labels = jnp.arange(B) % 5
    for x in frames:
        state, _ = step(state, {"image": jnp.asarray(np.swapaxes(x, 0, 1)), "label": labels})
    bn = defs.model(state.params, state.model_state).bn
    mean, var = numpy_ema(frames, unbiased=False)
    np.testing.assert_allclose(np.asarray(bn.mean[...]), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(bn.var[...]), var, rtol=1e-5)


def test_momentum_argument_sets_the_update_rate():
    """A momentum other than the default follows the same numpy EMA with that rate."""
    momentum = 0.5
    xs = batches(2, (1, 2, 3, 3, 2), seed=4)
    bn = nn.BatchNorm(2, momentum=momentum, rngs=nnx.Rngs(0))
    mean, var = np.zeros(2), np.ones(2)
    for x in xs:
        bn(jnp.asarray(x))
        pooled = x.reshape(-1, 2).astype(np.float64)
        mean = momentum * mean + (1 - momentum) * pooled.mean(0)
        var = momentum * var + (1 - momentum) * pooled.var(0)
    np.testing.assert_allclose(np.asarray(bn.mean[...]), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(bn.var[...]), var, rtol=1e-5)
