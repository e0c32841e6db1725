"""The recurrent LIF layer against a plain Python loop, finite differences and hand counts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import random_inputs  # tests/ is on sys.path (rootdir conftest)
from flax import nnx

from bsnn_jax import metrics, models, nn
from bsnn_jax.models.common import VARIANTS, NetOptions
from bsnn_jax.models.mlp import SpikingMLP
from bsnn_jax.ops import lif as lif_ops

T, B, F = 3, 4, 5


def numpy_recurrent_lif(x, v, binary, tau=0.5, v_th=1.0):
    """H = tau U + X[t] + V_b S[t-1], S = H >= v_th, U = H (1 - S), in a Python loop over t."""
    if binary:  # AGMM Eq. 5: mean |V| per output unit times sign(V), sign(0) = +1
        v = np.abs(v).mean(axis=0, keepdims=True) * np.where(v >= 0, 1.0, -1.0)
    u, s, out = np.zeros(x.shape[1:]), np.zeros(x.shape[1:]), []
    for t in range(x.shape[0]):
        h = tau * u + x[t] + s @ v
        s = (h >= v_th).astype(np.float64)
        u = h * (1 - s)
        out.append(s)
    return np.stack(out)


@pytest.mark.parametrize("binary", [True, False])
def test_forward_equals_a_python_loop(binary):
    layer = nn.RecurrentLIF(F, binary=binary, rngs=nnx.Rngs(0))
    layer.recurrent.kernel[...] = 0.8 * layer.recurrent.kernel[...] / jnp.abs(layer.recurrent.kernel[...]).mean()
    x = random_inputs.uniform(1, (6, B, F), -0.5, 1.6)
    spikes = np.asarray(layer(x))
    expected = numpy_recurrent_lif(np.asarray(x, np.float64), np.asarray(layer.recurrent.kernel[...], np.float64), binary)
    np.testing.assert_array_equal(spikes, expected)
    without = numpy_recurrent_lif(np.asarray(x, np.float64), np.zeros((F, F)), binary=False)
    assert (spikes != without).mean() > 0.05  # the recurrent current changes which neurons fire


def test_bptt_gradient_matches_finite_differences(monkeypatch):
    """With a smooth spike (a sigmoid in place of the step), the layer is differentiable, so the
    gradient BPTT computes through U[t-1] and V S[t-1] can be checked by central differences."""
    monkeypatch.setattr(lif_ops, "spike", lambda h, v_th, beta, surrogate: jax.nn.sigmoid(4.0 * (h - v_th)))
    layer = nn.RecurrentLIF(F, binary=False, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(layer)
    x = random_inputs.normal(2, (T, B, F))
    weights = random_inputs.normal(3, (T, B, F))

    def loss(v, x):
        state = jax.tree.map(lambda a: a, params)
        state["recurrent"]["kernel"].set_value(v)
        return jnp.sum(nnx.merge(graphdef, state)(x) * weights)

    v0 = params["recurrent"]["kernel"].get_value()
    g_v, g_x = jax.grad(loss, argnums=(0, 1))(v0, x)
    eps = 1e-2
    for (i, j), (t, b, f) in [((0, 1), (0, 0, 0)), ((3, 2), (1, 2, 3)), ((4, 4), (2, 3, 4))]:
        dv = jnp.zeros_like(v0).at[i, j].set(eps)
        fd_v = (loss(v0 + dv, x) - loss(v0 - dv, x)) / (2 * eps)
        assert float(g_v[i, j]) == pytest.approx(float(fd_v), rel=2e-2, abs=2e-3)
        dx = jnp.zeros_like(x).at[t, b, f].set(eps)
        fd_x = (loss(v0, x + dx) - loss(v0, x - dx)) / (2 * eps)
        assert float(g_x[t, b, f]) == pytest.approx(float(fd_x), rel=2e-2, abs=2e-3)
    assert float(jnp.abs(g_x[0]).sum()) > 0  # step 0's input reaches the loss of later steps too


@pytest.fixture(scope="module")
def small_rmlp():
    opts = NetOptions(VARIANTS["agmm"], timesteps=T, time_fold=True)
    model = SpikingMLP((6, 5), (F,), 3, opts, recurrent=(False, True), rngs=nnx.Rngs(4))
    for unit in model.units:  # evaluation mode: BN with unit running variance; scaled so every layer fires
        unit.bn.scale[...] = jnp.full_like(unit.bn.scale[...], 3.0)
        unit.bn.bias[...] = jnp.full_like(unit.bn.bias[...], 0.6)
    return model


def test_metrics_count_the_recurrent_weights_by_hand(small_rmlp):
    model = small_rmlp
    assert model.recurrent and model.recurrent_layers == (False, True) and isinstance(model.lifs[1], nn.RecurrentLIF)
    size = metrics.model_size(model)
    # binary: units.1.dense 6x5 and lifs.1.recurrent 5x5 at 1 bit
    assert size.binary_params == 6 * 5 + 5 * 5
    kernels = metrics.flip_kernels(model)
    assert sorted(kernels) == ["lifs.1.recurrent", "units.1.dense"]
    flipped = dict(kernels)
    flipped["lifs.1.recurrent"] = kernels["lifs.1.recurrent"].at[:2, 0].multiply(-1)  # 2 signs of V
    assert metrics.count_flips(kernels, flipped) == (2, 6 * 5 + 5 * 5)
    x = jnp.asarray(2 * np.random.default_rng(1).normal(size=(T, 8, F)), jnp.float32)
    activity = metrics.measure_activity(model, [x])
    model.eval()
    _, spikes = metrics.run_with_spikes(model, x)
    model.train()
    s = np.asarray(spikes["lifs.1"])
    assert 0 < s.mean() < 1
    rec = activity.synapses["lifs.1.recurrent"]
    # V reads S[t-1]: steps 0..T-2 of the layer's spikes, nothing at t = 0
    assert rec.spike_input and rec.macs_per_step == 5 * 5
    assert rec.input_rate == pytest.approx(s[:-1].sum() / s.size, rel=1e-5)
    sops = metrics.operation_counts(activity).sops
    by_hand = sum(syn.input_rate * syn.macs_per_step * T for syn in activity.synapses.values() if syn.spike_input)
    assert sops == pytest.approx(by_hand) and by_hand > activity.synapses["units.1.dense"].input_rate * 30 * T


def test_online_steps_equal_the_scanned_sequence(small_rmlp):
    model = small_rmlp
    x = jnp.asarray(2 * np.random.default_rng(2).normal(size=(T, 8, F)), jnp.float32)
    model.eval()  # running BN statistics: the same normalisation online and over the sequence
    try:
        stepped = nnx.merge(*nnx.split(model))
        nn.reset_online_state(stepped)
        outs = []
        for t in range(T):
            stepped = nn.online(stepped, t=t)
            outs.append(stepped(x[t : t + 1])[0])
        np.testing.assert_allclose(np.asarray(jnp.stack(outs)), np.asarray(model(x)), rtol=1e-5, atol=1e-5)
        carried = nnx.to_flat_state(nnx.state(stepped, nn.OnlineState))
        assert ("lifs", 1, "previous") in [tuple(p) for p, _ in carried]
    finally:
        model.train()


def test_recurrent_option_errors():
    with pytest.raises(ValueError, match=r"one flag per hidden layer \(3\)"):
        models.create("mlp", input_shape=(4,), recurrent=(True, False))
    with pytest.raises(ValueError, match="model 'small_cnn' has no recurrent option"):
        models.create("small_cnn", recurrent=True)
