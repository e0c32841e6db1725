"""The train step's objective: data loss + Q-SNN firing-rate penalty + a user regulariser, each
checked against a separate computation outside the step; and spike capture vs. LIF by hand."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bsnn_jax import models, ops
from bsnn_jax.metrics import firing_rates, run_with_spikes
from bsnn_jax.train import losses
from bsnn_jax.train.state import create_train_state
from bsnn_jax.train.step import make_train_step, time_major


@pytest.fixture(scope="module")
def setup():
    model = models.create("small_cnn", variant="agmm", timesteps=2, input_shape=(8, 8, 1), rngs=0)
    rng = np.random.default_rng(1)
    batch = {"image": rng.normal(size=(16, 8, 8, 1)).astype(np.float32), "label": rng.integers(0, 10, 16).astype(np.int32)}
    return model, batch


def test_objective_adds_firing_rate_penalty_and_regularizer(setup):
    model, batch = setup
    tx = optax.sgd(0.0)
    defs, state = create_train_state(model, tx, seed=0)
    seen = {}

    def regularizer(*, model, logits, batch, rates, rng):
        seen["rates"] = rates
        return 0.1 * jnp.mean(logits**2)

    step = make_train_step(
        defs, tx, loss="mean_logits", firing_rate_weight=0.5, firing_rate_target=0.2, regularizer=regularizer, donate=False
    )
    _, metrics = step(state, batch)
    assert set(seen["rates"]) == {"lifs.0", "lifs.1", "lifs.2"}

    # the same forward pass outside the step (BatchNorm in training mode, as in the step)
    fresh = defs.model(state.params, state.model_state, training=True)
    logits, rates = firing_rates(fresh, jnp.asarray(batch["image"]))
    data_loss = float(jnp.mean(losses.mean_logits_cross_entropy(logits, jnp.asarray(batch["label"]))))
    penalty = float(jnp.mean(jnp.stack([(rates["lifs.1"] - 0.2) ** 2])))  # Q-SNN drops the first and last layer
    reg = float(0.1 * jnp.mean(logits**2))
    np.testing.assert_allclose(float(metrics["loss"]), data_loss, rtol=1e-5)
    np.testing.assert_allclose(float(metrics["objective"]), data_loss + 0.5 * penalty + reg, rtol=1e-5)


def test_captured_spikes_are_the_lif_outputs(setup):
    model, batch = setup
    x = jnp.asarray(batch["image"][:4])
    out, captured = run_with_spikes(model, x)
    np.testing.assert_allclose(out, model(x), rtol=1e-6)
    assert list(captured) == ["lifs.0", "lifs.1", "lifs.2"]
    # lifs.0 fires on the stem: BN(conv(x)) broadcast over T, fed to a LIF
    stem = model.units[0]
    current = jnp.broadcast_to(stem(x[None]), (2,) + captured["lifs.0"].shape[1:])
    np.testing.assert_array_equal(captured["lifs.0"], ops.lif_scan(current))
    assert set(np.unique(np.asarray(captured["lifs.2"]))) <= {0.0, 1.0}


def test_time_major_moves_the_frame_axis_first():
    frames = jnp.arange(2 * 3 * 1 * 1 * 1).reshape(2, 3, 1, 1, 1)  # [B=2, T=3, ...]
    assert time_major(frames).shape == (3, 2, 1, 1, 1)
    assert time_major(jnp.zeros((2, 8, 8, 1))).shape == (2, 8, 8, 1)
    with pytest.raises(ValueError, match=r"\[B, H, W, C\]"):
        time_major(jnp.zeros((2, 8, 8)))
