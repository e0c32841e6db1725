"""Online training steps against BPTT where they must agree (T = 1) and on their own rules."""

import jax
import numpy as np
import optax
import pytest
from flax import nnx

from bsnn_jax import models, nn, optim
from bsnn_jax.nn import BinaryParam
from bsnn_jax.train.online import make_online_train_step
from bsnn_jax.train.state import create_train_state
from bsnn_jax.train.step import make_train_step


def batch(seed=0, n=16):
    rng = np.random.default_rng(seed)
    return {"image": rng.uniform(0, 3, size=(n, 8, 8, 1)).astype(np.float32), "label": rng.integers(0, 10, n).astype(np.int32)}


def test_online_step_equals_the_bptt_step_at_t1():
    """One time step: no temporal terms, the trace is the input; both steps are the same update."""
    model = models.create("small_cnn", variant="agmm", timesteps=1, input_shape=(8, 8, 1), rngs=0)
    tx = optax.sgd(0.1, momentum=0.9)
    defs, state = create_train_state(model, tx)
    b = batch()
    bptt_state, bptt = make_train_step(defs, tx, loss="tet", donate=False)(state, b)
    online_state, online = make_online_train_step(defs, tx, timesteps=1, loss="tet", donate=False)(state, b)
    np.testing.assert_allclose(float(online["loss"]), float(bptt["loss"]), rtol=1e-5)
    for a, c in zip(jax.tree.leaves(bptt_state.params), jax.tree.leaves(online_state.params), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(c), rtol=1e-4, atol=1e-6)
    for a, c in zip(jax.tree.leaves(bptt_state.model_state), jax.tree.leaves(online_state.model_state), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(c), rtol=1e-4, atol=1e-6)


def test_t_bso_online_keeps_binary_kernels_plus_minus_one_and_learns():
    model = models.create("small_cnn", variant="bsnn", timesteps=3, input_shape=(8, 8, 1), rngs=1)
    optim.sign_binary_kernels(model)
    tx = optim.binary_partition(model, binary=optim.t_bso(3, threshold=1e-8), fp=optax.sgd(0.05))
    defs, state = create_train_state(model, tx)
    train_step = make_online_train_step(defs, tx, timesteps=3, update="per_step", donate=False)
    b = batch(1, 32)
    first = None
    for _ in range(8):
        state, metrics = train_step(state, b)
        first = float(metrics["loss"]) if first is None else first
    assert float(metrics["loss"]) < first
    trained = defs.model(state.params, state.model_state)
    binary = [np.asarray(v[...]) for _, v in nnx.to_flat_state(nnx.state(trained, BinaryParam))]
    assert len(binary) == 2 and all(set(np.unique(k)) == {-1.0, 1.0} for k in binary)


def test_per_step_and_per_batch_updates_differ_and_bad_mode_is_an_error():
    model = models.create("small_cnn", variant="agmm", timesteps=2, input_shape=(8, 8, 1), rngs=2)
    tx = optax.sgd(0.1)
    defs, state = create_train_state(model, tx)
    b = batch(2)
    a, _ = make_online_train_step(defs, tx, timesteps=2, update="per_step", donate=False)(state, b)
    c, _ = make_online_train_step(defs, tx, timesteps=2, update="per_batch", donate=False)(state, b)
    assert any(
        not np.allclose(np.asarray(x), np.asarray(y)) for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(c.params), strict=True)
    )
    with pytest.raises(ValueError, match="unknown online update"):
        make_online_train_step(defs, tx, timesteps=2, update="sometimes")


def test_scanned_and_unrolled_time_loops_agree():
    """The T-loop as a lax.scan (traced t: AGMM's alpha[t], T-BSO's v[t]) equals the unrolled one."""
    T = 3
    model = models.create("small_cnn", variant="agmm", timesteps=T, input_shape=(8, 8, 1), rngs=3)
    model = nn.latent_free(model)
    tx = optim.binary_partition(model, binary=optim.t_bso(T, threshold=1e-8), fp=optax.sgd(0.05))
    defs, state = create_train_state(model, tx)
    rng = np.random.default_rng(3)
    frames = {"image": rng.uniform(0, 3, size=(16, T, 8, 8, 1)).astype(np.float32), "label": rng.integers(0, 10, 16).astype(np.int32)}
    out = [make_online_train_step(defs, tx, timesteps=T, unroll=u, donate=False)(state, frames) for u in (True, False)]
    (a, ma), (b, mb) = out
    np.testing.assert_allclose(float(ma["loss"]), float(mb["loss"]), rtol=1e-6)
    for x, y in zip(
        jax.tree.leaves((a.params, a.model_state, a.opt_state)), jax.tree.leaves((b.params, b.model_state, b.opt_state)), strict=True
    ):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)
    assert int(ma["flips"]) > 0  # the kernels did flip, so the comparison covers T-BSO's path


def kernel_signs(defs, state):
    model = defs.model(state.params, state.model_state)
    return [np.asarray(v[...]) >= 0 for _, v in nnx.to_flat_state(nnx.state(model, BinaryParam))]


@pytest.mark.parametrize("timesteps, update", [(1, "per_step"), (2, "per_batch")])
def test_flips_metric_counts_the_sign_changes_of_a_single_update(timesteps, update):
    """With one update per batch the reported flips are the sign changes between the state the
    step started from and the one it returned (counted independently here)."""
    model = models.create("small_cnn", variant="bsnn", timesteps=timesteps, input_shape=(8, 8, 1), rngs=4)
    model = nn.latent_free(model)
    tx = optim.binary_partition(model, binary=optim.bso(threshold=1e-9), fp=optax.sgd(0.05))
    defs, state = create_train_state(model, tx)
    step = make_online_train_step(defs, tx, timesteps=timesteps, update=update, donate=False)
    new_state, metrics = step(state, batch(4, 32))
    expected = sum(int(np.sum(a != b)) for a, b in zip(kernel_signs(defs, state), kernel_signs(defs, new_state), strict=True))
    assert expected > 0
    assert int(metrics["flips"]) == expected
