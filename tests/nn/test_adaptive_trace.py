"""The adaptive trace through the layers: nn.TracingLIF -> average pool -> a synaptic layer,
online, against the hand-worked traces of tests/ops/test_trace.py (BSO code: the trace is kept
per presynaptic neuron and pooled, not decayed after pooling)."""

import jax.numpy as jnp
import numpy as np
import pytest
import random_inputs  # tests/ is on sys.path (rootdir conftest)
from flax import nnx

from bsnn_jax import nn

# Per-neuron currents of 3 steps: neurons A, B (the two hand-worked ones), then A, A again.
A, B = [1.5, -0.2, 0.0], [1.2, 0.3, 0.9]
CURRENTS = jnp.asarray(np.array([A, B, A, A]).T[:, None, None, :], jnp.float32)  # [t][1, B=1, 4]
# Hand-worked traces: A 1, -0.1, -0.05; B 1, -0.5, 1.25; pooled in pairs (A, B) and (A, A).
POOLED = np.array([[1.0, 1.0], [-0.3, -0.1], [0.6, -0.05]])
SPIKES_POOLED = np.array([[1.0, 1.0], [0.0, 0.0], [0.5, 0.0]])


class PoolNet(nnx.Module):
    def __init__(self):
        self.lif = nn.TracingLIF(tau=0.5, v_th=1.0, reset="soft", detach_reset=True, surrogate="sigmoid", beta=4.0)
        self.fc = nn.BinaryLinear(2, 1, binary=False, use_bias=False, rngs=nnx.Rngs(0))

    def __call__(self, x):
        s = self.lif(x)
        return self.fc(s.reshape(s.shape[:2] + (2, 2)).mean(-1))  # average pool of neuron pairs


@pytest.fixture(scope="module")
def gradient():
    @nnx.jit
    @nnx.grad
    def grad(m, x):
        return jnp.sum(m(x))  # dL/dy = 1, so dL/dW = the pooled presynaptic trace

    return grad


@pytest.mark.parametrize("trace, expected", [("adaptive", POOLED), ("constant", None)])
def test_weight_gradient_is_the_pooled_neuron_trace(gradient, trace, expected):
    model = PoolNet()
    nn.reset_online_state(model)
    constant = np.zeros(2)
    for t in range(3):
        model = nn.online(model, t=t, trace_decay=0.5, trace=trace)
        grads = gradient(model, CURRENTS[t])
        constant = 0.5 * constant + SPIKES_POOLED[t]  # OTTT: lambda a_hat + pooled spikes
        want = constant if expected is None else expected[t]
        np.testing.assert_allclose(np.asarray(grads["fc"]["kernel"][...])[:, 0], want, atol=1e-6, err_msg=f"{trace} t={t}")


def test_adaptive_trace_needs_tracing_neurons():
    layer = nn.BinaryLinear(2, 1, binary=False, rngs=nnx.Rngs(0))
    view = nn.online(layer, t=0, trace="adaptive")
    with pytest.raises(ValueError, match="TracingLIF"):
        view(jnp.ones((1, 1, 2)))
    with pytest.raises(ValueError, match="unknown trace"):
        nn.online(layer, t=0, trace="exponential")


def test_tracing_lif_is_the_plain_lif_outside_the_adaptive_mode():
    x = random_inputs.normal(0, (3, 2, 5)) + 0.8
    kw = dict(tau=0.5, reset="soft", detach_reset=True, surrogate="sigmoid", beta=4.0)
    np.testing.assert_array_equal(nn.TracingLIF(**kw)(x), nn.LIF(**kw)(x))
