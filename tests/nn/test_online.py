import jax
import jax.numpy as jnp
import numpy as np
import pytest
import random_inputs  # tests/ is on sys.path (rootdir conftest)
from flax import nnx

from bsnn_jax import models, nn, ops


def test_presynaptic_trace_hand_worked():
    s = [jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0]), jnp.array([1.0, 1.0])]
    a = None
    for spikes in s:
        a = ops.presynaptic_trace(a, spikes, 0.5)
    # a[2] = s2 + 0.5 s1 + 0.25 s0
    np.testing.assert_allclose(np.asarray(a), [1.25, 1.5])


def test_trace_gradient_replaces_only_the_weight_gradient():
    rng = np.random.default_rng(0)
    x, trace = jnp.asarray(rng.normal(size=(4, 3))), jnp.asarray(rng.normal(size=(4, 3)))
    w, g = jnp.asarray(rng.normal(size=(3, 2))), jnp.asarray(rng.normal(size=(4, 2)))
    y, vjp = jax.vjp(lambda x_, t_, w_: ops.trace_gradient(lambda a, b: a @ b, x_, t_, w_), x, trace, w)
    dx, dtrace, dw = vjp(g)
    np.testing.assert_allclose(np.asarray(y), np.asarray(x @ w), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(dx), np.asarray(g @ w.T), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(dw), np.asarray(trace.T @ g), rtol=1e-5)  # delta a_hat^T
    assert not np.any(np.asarray(dtrace))


@pytest.fixture(scope="module")
def net():
    model = models.create("small_cnn", variant="agmm", timesteps=3, input_shape=(8, 8, 1), rngs=0)
    x = random_inputs.uniform(0, (3, 4, 8, 8, 1)) * 3
    return model, x


def run_online(model, x):
    model = nnx.merge(*nnx.split(model))
    nn.reset_online_state(model)
    outs = []
    for t in range(x.shape[0]):
        model = nn.online(model, t=t)  # a view of the last view: the carried membranes and traces go along
        outs.append(model(x[t : t + 1])[0])
    return jnp.stack(outs), model


def test_online_forward_equals_the_sequence_forward(net):
    model, x = net
    model.eval()  # running BN statistics: the same normalisation online and over the sequence
    try:
        online, stepped = run_online(model, x)
        np.testing.assert_allclose(np.asarray(online), np.asarray(model(x)), rtol=1e-5, atol=1e-5)
        static_online, _ = run_online(model, jnp.broadcast_to(x[0], x.shape))
        np.testing.assert_allclose(np.asarray(static_online), np.asarray(model(x[0])), rtol=1e-5, atol=1e-5)
        carried = nnx.state(stepped, nn.OnlineState)
        assert len(nnx.to_flat_state(carried)) == 3 + 3  # three LIF membranes, traces of conv2, conv3, fc
    finally:
        model.train()


def test_online_gradient_equals_bptt_where_time_terms_vanish():
    """At T = 1 there is no past: the trace is the input and the membrane starts at zero."""
    model = models.create("small_cnn", variant="agmm", timesteps=1, input_shape=(8, 8, 1), rngs=1)
    x = random_inputs.uniform(2, (4, 8, 8, 1)) * 3
    y = jnp.array([0, 1, 2, 3])

    def loss(m, v):
        return jnp.mean(-jax.nn.log_softmax(m(v)[0])[jnp.arange(4), y])

    grad = nnx.jit(nnx.grad(loss))  # one program per model instead of op-by-op dispatch (~15 s here)
    bptt = grad(nnx.merge(*nnx.split(model)), x)
    online_model = nnx.merge(*nnx.split(model))
    nn.reset_online_state(online_model)
    online_model = nn.online(online_model, t=0)
    online = grad(online_model, x)
    for (path, a), (_, b) in zip(nnx.to_flat_state(bptt), nnx.to_flat_state(online), strict=True):
        np.testing.assert_allclose(np.asarray(a[...]), np.asarray(b[...]), rtol=1e-4, atol=1e-6, err_msg=str(path))


def test_online_mode_is_a_view_that_leaves_the_model_as_it_was(net):
    """``nn.online`` sets the mode on a view: the model the user holds (and any graph definition
    taken from it) still runs whole sequences."""
    model, x = net
    view = nn.online(model, t=1)
    assert view.online and all(lif.online for lif in view.lifs) and view.units[1].agmm.time_index == 1
    assert not model.online and not any(lif.online for lif in model.lifs) and model.units[1].agmm.time_index is None
    assert model(x).shape[0] == x.shape[0]  # still the whole sequence
