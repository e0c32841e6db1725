"""The MLP and 1-D families under the library's training and measuring machinery: online T-BSO,
firing/SOP metrics."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from bsnn_jax import metrics, models, optim
from bsnn_jax.nn import BinaryParam
from bsnn_jax.train.online import make_online_train_step
from bsnn_jax.train.state import create_train_state

T = 3


def sequence_batch(seed, n=32, features=6):
    """Class k: features drawn around k, fed one row per step (time-major after the step's swap)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(size=(n, T, 1, 1, features)) + y[:, None, None, None, None]
    return {"image": x.astype(np.float32), "label": y.astype(np.int32)}


@pytest.mark.parametrize(
    "name, shape, extra, trace",
    [
        ("mlp", (1, 1, 6), {}, "constant"),
        ("conv1d", (8, 1, 2), {}, "constant"),
        # S[t-1] carried between steps; V's gradient from the trace of S[t-1] (the BSO code's adaptive one)
        ("mlp", (1, 1, 6), {"recurrent": True}, "adaptive"),
    ],
)
def test_t_bso_online_learns_and_keeps_kernels_plus_minus_one(name, shape, extra, trace):
    model = models.create(name, variant="bsnn", num_classes=3, timesteps=T, input_shape=shape, rngs=1, **extra)
    optim.sign_binary_kernels(model)
    tx = optim.binary_partition(model, binary=optim.t_bso(T, threshold=1e-8), fp=optax.sgd(0.05))
    defs, state = create_train_state(model, tx)
    step = make_online_train_step(defs, tx, timesteps=T, update="per_step", trace=trace, donate=False)
    b = sequence_batch(0, features=shape[-1])
    if name == "conv1d":  # a [B, T, L, 1, C] signal sequence
        b["image"] = np.repeat(b["image"], 8, axis=2)
    losses = []
    for _ in range(6):
        state, m = step(state, b)
        losses.append(float(m["loss"]))
    assert losses[-1] < losses[0]
    trained = defs.model(state.params, state.model_state)
    kernels = [np.asarray(v[...]) for _, v in nnx.to_flat_state(nnx.state(trained, BinaryParam))]
    assert len(kernels) == (5 if extra else 2) and all(set(np.unique(k)) == {-1.0, 1.0} for k in kernels)


def test_activity_of_the_mlp_by_hand():
    """A synapse's input rate is the firing rate of the LIF before it; MACs per step are fan_in * fan_out."""
    model = models.create("mlp", variant="agmm", num_classes=3, timesteps=T, input_shape=(6,), rngs=2)
    for unit in model.units:  # evaluation mode: BN with unit running variance; scaled so every layer fires
        unit.bn.scale[...] = jnp.full_like(unit.bn.scale[...], 4.0)
        unit.bn.bias[...] = jnp.full_like(unit.bn.bias[...], 0.8)
    x = jnp.asarray(2 * np.random.default_rng(1).normal(size=(T, 8, 6)), jnp.float32)
    activity = metrics.measure_activity(model, [x, x[:, :4]])
    rates = activity.firing_rates
    assert len(rates) == 3 and all(0 < r < 1 for r in rates.values())
    syn = activity.synapses
    assert syn["units.0.dense"].macs_per_step == 6 * 256 and not syn["units.0.dense"].spike_input
    assert syn["units.1.dense"].macs_per_step == 256 * 256 and syn["units.1.dense"].spike_input
    assert syn["fc"].macs_per_step == 256 * 3
    for before, synapse in (("lifs.0", "units.1.dense"), ("lifs.1", "units.2.dense"), ("lifs.2", "fc")):
        assert syn[synapse].input_rate == pytest.approx(rates[before], rel=1e-5)
    # the same model's spikes on the whole batch in evaluation mode, counted directly
    model.eval()
    _, spikes = metrics.run_with_spikes(model, jnp.concatenate([x, x[:, :4]], axis=1))
    counted = {k: float(np.mean(np.asarray(v))) for k, v in spikes.items()}
    assert sorted(counted) == sorted(rates)
    for k in rates:
        assert rates[k] == pytest.approx(counted[k], rel=1e-5)
