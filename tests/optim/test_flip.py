"""Bop / BSO / T-BSO: hand-worked flips, Larq's rule, schedules, exactness, jit and scan."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import random_inputs  # tests/ is on sys.path (rootdir conftest)

from bsnn_jax.optim import FlipState, OneMinus, bop, bso, t_bso


def run(tx, w, grads, ts=None):
    """Apply ``tx`` to ``w`` for each gradient (and time step); return the weights after each step."""
    state = tx.init(w)
    history = []
    for k, g in enumerate(grads):
        extra = {} if ts is None else {"t": ts[k]}
        updates, state = tx.update(jnp.asarray(g, jnp.float32), state, w, **extra)
        w = optax.apply_updates(w, updates)
        history.append(np.asarray(w))
    return history, state


W0 = jnp.array([1.0, -1.0, 1.0, -1.0])
G1 = [0.4, 0.4, -0.4, 0.1]
G2 = [-0.3, -0.6, 0.0, -0.4]


def test_bso_hand_worked_two_steps():
    # threshold 0.1, beta 0.5:
    # step 1: M = 0.5 G1 = [0.2, 0.2, -0.2, 0.05]; W M = [0.2, -0.2, -0.2, -0.05] -> flip 0
    #         W = [-1, -1, 1, -1]
    # step 2: M = 0.5 M + 0.5 G2 = [-0.05, -0.2, -0.1, -0.175]; W M = [0.05, 0.2, -0.1, 0.175]
    #         -> flip 1 and 3: W = [-1, 1, 1, 1]
    (w1, w2), state = run(bso(threshold=0.1, beta=0.5), W0, [G1, G2])
    np.testing.assert_array_equal(w1, [-1, -1, 1, -1])
    np.testing.assert_array_equal(w2, [-1, 1, 1, 1])
    np.testing.assert_allclose(state.momentum, [-0.05, -0.2, -0.1, -0.175], rtol=1e-6)
    assert int(state.count) == 2 and state.second_moment is None


def test_momentum_reset_zeroes_flipped_weights_and_changes_later_flips():
    # As above, but step 1 zeroes M[0] (it flipped): M = [0, 0.2, -0.2, 0.05].
    # step 2: M = [-0.15, -0.2, -0.1, -0.175]; W M = [0.15, 0.2, -0.1, 0.175] -> flip 0, 1, 3
    #         W = [1, 1, 1, 1]; the flipped weights' momentum is zeroed: M = [0, 0, -0.1, 0].
    (w1, w2), state = run(bso(threshold=0.1, beta=0.5, reset_momentum=True), W0, [G1, G2])
    np.testing.assert_array_equal(w1, [-1, -1, 1, -1])
    np.testing.assert_array_equal(w2, [1, 1, 1, 1])
    np.testing.assert_allclose(state.momentum, [0, 0, -0.1, 0], rtol=1e-6)


def test_t_bso_second_moment_per_time_step_hand_worked():
    # T = 3, threshold 0.5, beta1 = beta2 = 0.5, eps = 0; calls at t = 0, 2, 0, then 1.
    w = jnp.array([1.0, 1.0, -1.0, -1.0])
    grads = [[0.2, 0.2, 0.2, 0.2], [0.4, 0.4, 0.0, 0.0], [-0.6, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, -0.2]]
    # mean(g^2) = 0.04, 0.08, 0.09, 0.01
    # 1 (t=0): v = [0.02, 0, 0];      M = [.1, .1, .1, .1];        W M = [.1, .1, -.1, -.1]
    #          threshold 0.5 sqrt(0.02) = 0.0707 -> flip 0, 1: W = [-1, -1, -1, -1]
    # 2 (t=2): v = [0.02, 0, 0.04];   M = [.25, .25, .05, .05];    all W M < 0: no flip
    # 3 (t=0): v = [0.055, 0, 0.04];  M = [-.175, .125, .025, .025]; W M = [.175, -.125, -.025, -.025]
    #          threshold 0.5 sqrt(0.055) = 0.1173 -> flip 0: W = [1, -1, -1, -1]
    # 4 (t=1): v = [0.055, 0.005, 0.04]; M = [-.0875, .0625, .0125, -.0875];
    #          W M = [-.0875, -.0625, -.0125, .0875]; threshold 0.5 sqrt(0.005) = 0.0354 -> flip 3
    tx = t_bso(timesteps=3, threshold=0.5, beta1=0.5, beta2=0.5, eps=0.0)
    history, state = run(tx, w, grads, ts=[0, 2, 0, 1])
    np.testing.assert_array_equal(np.stack(history), [[-1, -1, -1, -1], [-1, -1, -1, -1], [1, -1, -1, -1], [1, -1, -1, 1]])
    np.testing.assert_allclose(state.second_moment, [0.055, 0.005, 0.04], rtol=1e-6)
    np.testing.assert_allclose(state.momentum, [-0.0875, 0.0625, 0.0125, -0.0875], rtol=1e-6)

    # The same 4th call at t=0 does not flip: v[0] = 0.5 * 0.055 + 0.5 * 0.01 = 0.0325 and
    # 0.5 sqrt(0.0325) = 0.0901 > 0.0875.
    (_, state3) = run(tx, w, grads[:3], ts=[0, 2, 0])
    updates, state4 = tx.update(jnp.asarray(grads[3]), state3, jnp.asarray(history[2]), t=0)
    np.testing.assert_array_equal(updates, [0, 0, 0, 0])
    np.testing.assert_allclose(state4.second_moment, [0.0325, 0, 0.04], rtol=1e-6)


def test_t_bso_eps_outside_sqrt_is_the_reference_code_form():
    # threshold 1, beta1 0.5, beta2 = 1 - 1e-6, eps 0.01, g = [0.1, 0.4]:
    # M = [0.05, 0.2]; v = 1e-6 * mean(g^2) = 1e-6 * 0.085 = 8.5e-8, sqrt(v) = 2.9e-4
    # code form:  W M > sqrt(v) + eps = 0.0103   -> both flip
    # paper form: W M > sqrt(v + eps) = 0.1000004 -> only the second flips
    w, g = jnp.array([1.0, 1.0]), jnp.array([0.1, 0.4])
    for outside, expected in [(True, [-2, -2]), (False, [0, -2])]:
        tx = t_bso(1, threshold=1.0, beta1=0.5, beta2=1 - 1e-6, eps=0.01, eps_outside_sqrt=outside)
        updates, state = tx.update(g, tx.init(w), w, t=0)
        np.testing.assert_array_equal(updates, expected)
        np.testing.assert_allclose(state.second_moment, [8.5e-8], rtol=1e-5)


def larq_bop_numpy(w, grads, threshold, gamma):
    """larq.optimizers.Bop._resource_apply_dense, written in numpy (float32 as Keras)."""
    larq_sign = lambda x: np.where(x >= 0, 1, -1).astype(np.float32)  # noqa: E731 - lq.math.sign
    w, m = np.asarray(w, np.float32), np.zeros_like(w, np.float32)
    history = []
    for g in grads:
        m = m + np.float32(gamma) * (np.asarray(g, np.float32) - m)
        w = larq_sign(-np.sign(w * m - np.float32(threshold)) * w)
        history.append(w.copy())
    return history, m


def test_bop_matches_larq_over_random_steps():
    rng = np.random.default_rng(0)
    w = np.where(rng.random(256) < 0.5, 1.0, -1.0).astype(np.float32)
    grads = (rng.normal(size=(30, 256)) * 1e-2).astype(np.float32)
    ours, state = run(bop(threshold=1e-3, gamma=0.1), jnp.asarray(w), grads)
    larq, m = larq_bop_numpy(w, grads, 1e-3, 0.1)
    flips = sum(int((a != b).sum()) for a, b in zip([w] + larq[:-1], larq, strict=True))
    assert flips > 100  # the comparison is not vacuous
    for a, b in zip(ours, larq, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(state.momentum, m, rtol=1e-5, atol=1e-9)


def test_bop_threshold_equality_is_not_a_flip_larq_sets_plus_one():
    # gamma 0.5, g = +-0.5 -> m = +-0.25 = threshold exactly, w m = 0.25 for both weights.
    w, g = jnp.array([1.0, -1.0]), np.array([[0.5, -0.5]], np.float32)
    (ours,), _ = run(bop(threshold=0.25, gamma=0.5), w, g)
    (larq,), _ = larq_bop_numpy(np.asarray(w), g, 0.25, 0.5)
    np.testing.assert_array_equal(ours, [1, -1])  # strict >: nothing flips
    np.testing.assert_array_equal(larq, [1, 1])  # Larq: sign(-sign(0) w) = sign(0) = +1


@pytest.mark.parametrize("beta,gamma", [(0.75, 0.25), (1 - 1e-3, 1e-3)])
def test_bso_is_bop_under_the_parameter_mapping(beta, gamma):
    rng = np.random.default_rng(1)
    w = jnp.asarray(np.where(rng.random((8, 16)) < 0.5, 1.0, -1.0), jnp.float32)
    grads = rng.normal(size=(20, 8, 16)).astype(np.float32)
    w_bso, s_bso = run(bso(threshold=1e-4, beta=beta), w, grads)
    w_bop, s_bop = run(bop(threshold=1e-4, gamma=gamma), w, grads)
    np.testing.assert_array_equal(np.stack(w_bso), np.stack(w_bop))
    np.testing.assert_array_equal(s_bso.momentum, s_bop.momentum)


def test_threshold_schedule_is_evaluated_at_the_update_count():
    # gamma 1 (m = g) and g = 0.25 sign(w), so sign(w) m = 0.25 at every call; the threshold
    # 0.1 (k + 1) at call k lets calls 0 and 1 flip, not 2 or 3.
    tx = bop(threshold=lambda k: 0.1 * (k + 1), gamma=1.0)
    state, w = tx.init(jnp.array([1.0])), jnp.array([1.0])
    flips = []
    for _ in range(4):
        updates, state = tx.update(0.25 * w, state, w)
        flips.append(bool(updates[0] != 0))
        w = optax.apply_updates(w, updates)
    assert flips == [True, True, False, False]
    assert int(state.count) == 4


def test_reference_code_decay_of_rate_and_threshold():
    # Both x0.1 every 2 calls; g = 1 every call, threshold high enough that nothing flips.
    decay = dict(transition_steps=2, decay_rate=0.1, staircase=True)
    tx = bso(threshold=optax.exponential_decay(100.0, **decay), beta=OneMinus(optax.exponential_decay(1e-1, **decay)))
    state, w = tx.init(jnp.array([1.0])), jnp.array([1.0])
    m = 0.0
    for rate in [1e-1, 1e-1, 1e-2, 1e-2, 1e-3]:  # hand-computed: m += rate (1 - m)
        m += rate * (1 - m)
        updates, state = tx.update(jnp.array([1.0]), state, w)
        np.testing.assert_allclose(state.momentum, [m], rtol=1e-6)
    assert not updates.any()


def test_one_minus_keeps_rates_that_float32_beta_cannot():
    w, g = jnp.array([1.0]), jnp.array([1.0])
    exact = bso(threshold=1.0, beta=OneMinus(lambda k: 1e-9))
    rounded = bso(threshold=1.0, beta=lambda k: jnp.float32(1 - 1e-9))  # 1.0 in float32, like any array schedule
    python_float = bso(threshold=1.0, beta=1 - 1e-9)  # 1 - beta taken in float64
    np.testing.assert_allclose(exact.update(g, exact.init(w), w)[1].momentum, [1e-9], rtol=1e-6)
    np.testing.assert_allclose(python_float.update(g, python_float.init(w), w)[1].momentum, [1e-9], rtol=1e-6)
    np.testing.assert_array_equal(rounded.update(g, rounded.init(w), w)[1].momentum, [0.0])


OPTIMIZERS = {
    "bop": (bop(threshold=1e-3, gamma=0.1), None),
    "bso": (bso(threshold=1e-3, beta=0.9), None),
    "bso_reset": (bso(threshold=1e-3, beta=0.9, reset_momentum=True), None),
    "t_bso": (t_bso(timesteps=4, threshold=0.5, beta1=0.9, beta2=0.99), 4),
    "t_bso_code": (t_bso(timesteps=4, threshold=0.5, beta1=0.9, beta2=0.99, eps=1e-10, eps_outside_sqrt=True), 4),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_kernels_stay_exactly_binary_after_100_random_steps(name):
    tx, timesteps = OPTIMIZERS[name]
    rng = np.random.default_rng(2)
    gamma = np.array([1.0, 0.5, 0.037, 3.3], np.float32)  # +-1 and +-gamma per output channel
    params = {
        "unit": jnp.asarray(np.where(rng.random((3, 3, 2, 4)) < 0.5, 1.0, -1.0), jnp.float32),
        "scaled": jnp.asarray(np.where(rng.random((5, 4)) < 0.5, 1.0, -1.0) * gamma, jnp.float32),
    }
    start = jax.tree.map(np.asarray, params)
    update = jax.jit(tx.update)
    state = tx.init(params)
    for k in range(100):
        grads = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape) * 10.0 ** rng.uniform(-4, 1), jnp.float32), params)
        extra = {} if timesteps is None else {"t": k % timesteps}
        updates, state = update(grads, state, params, **extra)
        params = optax.apply_updates(params, updates)
    np.testing.assert_array_equal(np.abs(params["unit"]), 1.0)
    np.testing.assert_array_equal(np.abs(params["scaled"]), np.broadcast_to(gamma, (5, 4)))
    assert (np.asarray(params["unit"]) != start["unit"]).any()  # it did flip
    assert set(jax.tree.leaves(jax.tree.map(lambda x: x.dtype, state.momentum))) == {np.dtype(np.float32)}


def test_scaled_kernel_uses_the_sign_of_w_against_the_threshold():
    # w = +-0.01 per channel; sign(w) m = 0.05 > 0.04 flips, though w m = 5e-4 would not.
    w = jnp.array([[0.01, -0.01]])
    updates, _ = bop(threshold=0.04, gamma=0.5).update(jnp.array([[0.1, 0.1]]), bop(0.04, 0.5).init(w), w)
    np.testing.assert_array_equal(optax.apply_updates(w, updates), np.float32([[-0.01, -0.01]]))


def test_init_refuses_real_valued_kernels_but_not_abstract_ones():
    w = random_inputs.normal(0, (3, 3, 2, 4))
    with pytest.raises(ValueError, match="not binary"):
        bso().init({"conv": w})
    with pytest.raises(ValueError, match="not binary"):
        t_bso(2).init(jnp.array([[1.0, 0.0]]))  # a zero weight never flips
    shapes = jax.eval_shape(t_bso(2).init, {"conv": w})
    assert shapes.second_moment["conv"].shape == (2,) and shapes.momentum["conv"].shape == w.shape


def test_update_argument_errors():
    w = jnp.ones(3)
    with pytest.raises(ValueError, match=re.escape("t_bso needs the time step: update(grads, state, params, t=t), 0 <= t < 2")):
        t_bso(2).update(w, t_bso(2).init(w), w)
    with pytest.raises(ValueError, match="t_bso was built for timesteps=2, got t=2$"):
        t_bso(2).update(w, t_bso(2).init(w), w, t=2)
    with pytest.raises(ValueError, match="t_bso was built for timesteps=2, got t=-1$"):
        t_bso(2).update(w, t_bso(2).init(w), w, t=jnp.int32(-1))
    # bso is built on bop, whose name the message carries; only the instruction is pinned here
    with pytest.raises(ValueError, match=re.escape(" flips the weights it is given: call update(grads, state, params)") + "$"):
        bso().update(w, bso().init(w))


# One case per check in the constructors; each message names the argument and the bad value.
@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: bso(beta=1.0), "beta must be in [0, 1), got 1.0"),
        (lambda: bso(beta=-0.5), "beta must be in [0, 1), got -0.5"),
        (lambda: bso(beta=OneMinus(2.0)), "beta=OneMinus(rate) needs 0 < rate <= 1, got 2.0"),
        (lambda: bso(beta=OneMinus(0.0)), "beta=OneMinus(rate) needs 0 < rate <= 1, got 0.0"),
        (lambda: bso(threshold=-1.0), "threshold must be >= 0 (or a schedule), got -1.0"),
        (lambda: bop(gamma=0.0), "gamma must be in (0, 1], got 0.0"),
        (lambda: bop(gamma=1.5), "gamma must be in (0, 1], got 1.5"),
        (lambda: t_bso(0), "t_bso needs timesteps >= 1, got 0"),
        (lambda: t_bso(2, beta1=1.0), "beta1 must be in [0, 1), got 1.0"),
        (lambda: t_bso(2, beta2=1.0), "beta2 must be in [0, 1), got 1.0"),
        (lambda: t_bso(2, eps=-1e-8), "eps must be >= 0, got -1e-08"),
    ],
)
def test_constructor_errors(build, message):
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        build()


def test_t_bso_inside_jit_and_scan_over_t_matches_a_python_loop():
    T = 3
    tx = t_bso(timesteps=T, threshold=0.3, beta1=0.8, beta2=0.9)
    rng = np.random.default_rng(3)
    w = jnp.asarray(np.where(rng.random((6, 5)) < 0.5, 1.0, -1.0), jnp.float32)
    grads = jnp.asarray(rng.normal(size=(2 * T, 6, 5)), jnp.float32)  # two minibatches of T steps
    ts = jnp.arange(2 * T, dtype=jnp.int32) % T

    def step(carry, xs):
        w, state = carry
        g, t = xs
        updates, state = tx.update(g, state, w, t=t)
        return (optax.apply_updates(w, updates), state), None

    (w_scan, s_scan), _ = jax.jit(lambda w, s: jax.lax.scan(step, (w, s), (grads, ts)))(w, tx.init(w))

    w_loop, s_loop = w, tx.init(w)
    update = jax.jit(tx.update)
    for k in range(2 * T):
        updates, s_loop = update(grads[k], s_loop, w_loop, t=jnp.int32(k % T))  # traced t
        w_loop = optax.apply_updates(w_loop, updates)
    w_eager, s_eager = run(tx, w, grads, ts=[k % T for k in range(2 * T)])  # Python int t

    np.testing.assert_array_equal(w_scan, w_loop)
    np.testing.assert_array_equal(w_scan, w_eager[-1])
    assert isinstance(s_scan, FlipState) and int(s_scan.count) == 2 * T
    np.testing.assert_allclose(s_scan.second_moment, s_loop.second_moment, rtol=1e-6)
    np.testing.assert_allclose(s_scan.second_moment, s_eager.second_moment, rtol=1e-6)
    np.testing.assert_allclose(s_scan.momentum, s_eager.momentum, rtol=1e-6)
