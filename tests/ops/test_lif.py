import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import random_inputs  # tests/ is on sys.path (rootdir conftest)
from hlo_work import kernel_sizes  # tests/ is on sys.path (rootdir conftest)

from bsnn_jax.ops import computed_once, lif_scan, lif_step
from bsnn_jax.ops.batchnorm import batch_norm
from bsnn_jax.ops.lif import CARRY_ONCE_MIN_TIMESTEPS, MEMBRANE_KEPT_EVERY


def test_hard_reset_hand_worked_sequence():
    # tau = 0.5, v_th = 1: H = 0.6, 0.9, 1.05 (fire, reset to 0), 1.2 (fire), 0.3
    x = jnp.array([0.6, 0.6, 0.6, 1.2, 0.3])[:, None]
    s, u = lif_scan(x, return_membrane=True)
    np.testing.assert_array_equal(np.asarray(s[:, 0]), [0, 0, 1, 1, 0])
    assert float(u[0]) == pytest.approx(0.3)


def test_soft_reset_hand_worked_sequence():
    # H = 0.6, 0.9, 1.05 -> fire, U = 0.05; H = 0.025 + 1.2 = 1.225 -> fire, U = 0.225; H = 0.1125 + 0.3
    x = jnp.array([0.6, 0.6, 0.6, 1.2, 0.3])[:, None]
    s, u = lif_scan(x, reset="soft", return_membrane=True)
    np.testing.assert_array_equal(np.asarray(s[:, 0]), [0, 0, 1, 1, 0])
    assert float(u[0]) == pytest.approx(0.4125, abs=1e-6)


def test_equality_fires_and_tau_and_threshold_are_honoured():
    x = jnp.array([0.5, 0.5])[:, None]
    np.testing.assert_array_equal(np.asarray(lif_scan(x, tau=1.0)[:, 0]), [0, 1])  # 1.0 >= 1.0 fires
    np.testing.assert_array_equal(np.asarray(lif_scan(x, tau=1.0, v_th=1.5)[:, 0]), [0, 0])


@pytest.mark.parametrize("detach", [False, True])
def test_bptt_gradient_matches_hand_derivation(detach):
    # T = 2, triangle surrogate s'(h) = max(0, 1 - |h - 1|); L = S[0] + S[1].
    # h0 = x0 = 0.8 (no spike, s'=0.8); u0 = h0 (1 - S0); h1 = 0.5 u0 + x1 = 1.3 (spike, s'=0.7)
    # dL/dx1 = 0.7; dL/dx0 = 0.8 + 0.7 * 0.5 * du0/dh0, du0/dh0 = (1 - S0) - h0 s'(h0) unless detached.
    x = jnp.array([0.8, 0.9])
    g = jax.grad(lambda v: jnp.sum(lif_scan(v, detach_reset=detach)))(x)
    du0 = 1.0 if detach else 1.0 - 0.8 * 0.8
    np.testing.assert_allclose(np.asarray(g), [0.8 + 0.7 * 0.5 * du0, 0.7], rtol=1e-5)


@pytest.mark.parametrize("t", [6, 10])  # 10: chunks of MEMBRANE_KEPT_EVERY steps and 2 steps left over
def test_scan_equals_python_loop_of_steps_and_unroll_is_equivalent(t):
    x = random_inputs.normal(0, (t, 3, 4)) + 0.5
    weights = jnp.arange(float(t))[:, None, None]

    def loop(v):
        u, spikes = jnp.zeros((3, 4)), []
        for step in range(t):
            u, s = lif_step(u, v[step], reset="soft")
            spikes.append(s)
        return jnp.stack(spikes)

    np.testing.assert_array_equal(np.asarray(lif_scan(x, reset="soft")), np.asarray(loop(x)))
    np.testing.assert_array_equal(np.asarray(lif_scan(x, reset="soft", unroll=1)), np.asarray(loop(x)))
    f = lambda v, unroll: jnp.sum(lif_scan(v, reset="soft", unroll=unroll) * weights)
    expected = np.asarray(jax.grad(lambda v: jnp.sum(loop(v) * weights))(x))
    assert np.abs(expected).max() > 0.1  # not a vacuous comparison of zeros
    for unroll in (True, 1, 3):
        np.testing.assert_allclose(np.asarray(jax.grad(f)(x, unroll)), expected, rtol=1e-6, atol=1e-7)
    kept = lambda v, every: jnp.sum(lif_scan(v, reset="soft", membrane_kept_every=every) * weights)
    for every in (1, 3):
        np.testing.assert_allclose(np.asarray(jax.grad(kept)(x, every)), expected, rtol=1e-6, atol=1e-7)


def test_initial_membrane_and_bad_shapes():
    x = jnp.array([0.6])[:, None]
    assert float(lif_scan(x, u0=jnp.array([0.9]))[0, 0]) == 1.0  # 0.45 + 0.6 >= 1
    with pytest.raises(ValueError, match="u0 has shape"):
        lif_scan(x, u0=jnp.zeros(2))
    with pytest.raises(ValueError, match="unknown reset"):
        lif_scan(x, reset="zero")
    with pytest.raises(TypeError, match="floating"):
        lif_scan(jnp.ones((2, 3), jnp.int32))


def test_jit_vmap_and_bfloat16_with_float32_membrane():
    x = random_inputs.normal(1, (2, 4, 3)) + 0.6  # vmapped over axis 0, time is axis 1
    out = jax.jit(jax.vmap(lambda v: lif_scan(v)))(x)
    np.testing.assert_array_equal(np.asarray(out[1]), np.asarray(lif_scan(x[1])))
    xb = x[0].astype(jnp.bfloat16)
    s, u = lif_scan(xb, membrane_dtype=jnp.float32, return_membrane=True)
    assert s.dtype == jnp.bfloat16 and u.dtype == jnp.float32
    g = jax.grad(lambda v: jnp.sum(lif_scan(v, membrane_dtype=jnp.float32).astype(jnp.float32)))(xb)
    assert g.dtype == jnp.bfloat16 and bool(jnp.all(jnp.isfinite(g.astype(jnp.float32))))


# The fused custom_vjp against autodiff through lif_step (fused=False), with an initial membrane
# and a cotangent on the final membrane, so every term of the hand-written backward is exercised.
# Every pair of options meets in some case (each surrogate with both resets and both detach
# options, every reset with every detach option): the surrogate enters only as dS/dH, and the reset
# and detach terms do not depend on it, so the 16-case product adds nothing to these 8.
FUSED_CASES = [
    (reset, detach != (i % 2 == 1), surrogate)
    for i, surrogate in enumerate(("triangle", "sigmoid", "arctan", "rectangular"))
    for reset, detach in (("hard", False), ("soft", True))
]


def _lif_loss(x, u0, fused, reset, detach, surrogate, save_dtype=None):
    s, u = lif_scan(
        x,
        0.7,
        0.9,
        reset=reset,
        detach_reset=detach,
        surrogate=surrogate,
        beta=1.5,
        u0=u0,
        fused=fused,
        return_membrane=True,
        save_dtype=save_dtype,
    )
    weights = jnp.arange(1.0, 1.0 + s.size).reshape(s.shape) / s.size
    return jnp.sum(s * weights) + 0.3 * jnp.sum(u**2)


@functools.partial(jax.jit, static_argnums=(2, 3, 4, 5, 6))
def _lif_grads(x, u0, fused, reset, detach, surrogate, save_dtype=None):
    outputs = lif_scan(x, 0.7, 0.9, reset=reset, u0=u0, fused=fused, return_membrane=True)
    return outputs, jax.grad(_lif_loss, argnums=(0, 1))(x, u0, fused, reset, detach, surrogate, save_dtype)


@pytest.fixture(scope="module")
def lif_inputs():
    # T = 10: from 8 steps on the scan runs in chunks of 4 (ops.lif.scan_keeping_carry), 2 steps left over.
    return random_inputs.normal(3, (10, 5, 3)) * 0.8 + 0.5, random_inputs.normal(4, (5, 3)) * 0.3


@pytest.mark.parametrize(("reset", "detach", "surrogate"), FUSED_CASES)
def test_fused_lif_equals_autodiff_of_lif_step(lif_inputs, reset, detach, surrogate):
    (fused_out, fused_grads), (plain_out, plain_grads) = (_lif_grads(*lif_inputs, f, reset, detach, surrogate) for f in (True, False))
    for a, b in zip(fused_out, plain_out, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for a, b in zip(fused_grads, plain_grads, strict=True):
        assert float(jnp.max(jnp.abs(b))) > 0.04  # not a vacuous comparison of zeros (U[-1]'s decays as 0.7^10)
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)


def test_fused_gradient_of_the_membrane_matches_finite_differences():
    # Below threshold the LIF is linear: U[T-1] = sum_t tau^(T-1-t) X[t] + tau^T U[-1].
    x, u0 = jnp.array([0.1, 0.2, -0.3, 0.25])[:, None], jnp.array([0.4])
    f = lambda v, u: jnp.sum(lif_scan(v, 0.6, 5.0, u0=u, fused=True, return_membrane=True)[1])
    gx, gu = (np.asarray(g)[..., 0] for g in jax.grad(f, argnums=(0, 1))(x, u0))
    eps = 1e-3
    fd = [(float(f(x.at[t, 0].add(eps), u0)) - float(f(x.at[t, 0].add(-eps), u0))) / (2 * eps) for t in range(4)]
    np.testing.assert_allclose(gx, fd, rtol=1e-3)
    np.testing.assert_allclose(gx, [0.6**3, 0.6**2, 0.6, 1.0], rtol=1e-5)
    np.testing.assert_allclose(gu, 0.6**4, rtol=1e-5)


def test_fused_bfloat16_residuals_are_close(lif_inputs):
    (_, exact), (_, rounded) = (_lif_grads(*lif_inputs, True, "hard", False, "triangle", d) for d in (None, "bfloat16"))
    for a, b in zip(rounded, exact, strict=True):
        assert not np.array_equal(np.asarray(a), np.asarray(b))  # H really was rounded
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=2e-2)


def test_array_tau_takes_the_autodiff_path_with_its_gradient():
    # A learned (traced) tau cannot be a static custom_vjp argument; below threshold
    # d U[T-1] / d tau = sum_t (T-1-t) tau^(T-2-t) X[t].
    x = jnp.array([0.1, 0.2, -0.3, 0.25])[:, None]
    g = jax.grad(lambda tau: jnp.sum(lif_scan(x, tau, 5.0, fused=True, return_membrane=True)[1]))(0.6)
    np.testing.assert_allclose(float(g), 3 * 0.6**2 * 0.1 + 2 * 0.6 * 0.2 + 1 * -0.3, rtol=1e-5)


def test_computed_once_is_the_identity_bit_for_bit_with_an_identity_gradient():
    # Every normal float, signed zeros and non-finite values (subnormals are flushed to zero here
    # as by any XLA:CPU arithmetic, e.g. the tau * U + X that makes a membrane).
    v = jnp.array([0.3, -0.0, 0.0, 1.2e-38, -3e38, jnp.inf, -jnp.inf, jnp.nan, 7.0])
    out = np.asarray(jax.jit(computed_once)(v))
    np.testing.assert_array_equal(out.view(np.uint32), np.asarray(v).view(np.uint32))
    w = jnp.arange(1.0, 10.0)
    g = jax.grad(lambda z: jnp.sum(w * computed_once(z)))(jnp.linspace(-1.0, 1.0, 9))
    np.testing.assert_array_equal(np.asarray(g), np.asarray(w))


def _lif_kernels(t: int, fused: bool, scan=lif_scan) -> list[int]:
    loss = lambda x: jnp.sum(scan(x, 0.5, 1.0, reset="soft", surrogate="sigmoid", beta=4.0, fused=fused) * x)
    return list(kernel_sizes(jax.jit(jax.grad(loss)).lower(jnp.ones((t, 4, 8))).compile().as_text()).values())


@pytest.mark.parametrize("fused", [False, True])
def test_unrolled_lif_compiles_to_work_linear_in_t(fused):
    # Without ops.computed_once XLA duplicates the membrane chain into every time step's kernel:
    # the kernel of step t recomputes U[0..t], and the compiled work grows as T^2 (3.7x from 16 to 32).
    short, long = sum(_lif_kernels(16, fused)), sum(_lif_kernels(32, fused))
    assert long <= 2.2 * short, (short, long)


def _plain_scan(x, tau, v_th, fused, **neuron):
    """lif_step scanned plainly, with nothing applied to the membrane carry."""
    step = lambda u, x_t: lif_step(u, x_t, tau=tau, v_th=v_th, **neuron)
    return jax.lax.scan(step, jnp.zeros(x.shape[1:]), x, unroll=True)[1]


def _layer_bptt_temp_bytes(t: int, every: int = MEMBRANE_KEPT_EVERY) -> int:
    """XLA temp memory of the gradient of a dense-BN-LIF-dense layer over ``t`` steps."""

    def loss(w, x):
        z, _, _ = batch_norm(x.reshape(-1, 64) @ w, jnp.ones(64), jnp.zeros(64))
        return jnp.sum(lif_scan(z.reshape(t, -1, 64), membrane_kept_every=every).reshape(-1, 64) @ w.T)

    compiled = jax.jit(jax.grad(loss)).lower(jnp.ones((64, 64)), jnp.ones((t, 256, 64))).compile()
    return compiled.memory_analysis().temp_size_in_bytes


def test_bptt_memory_grows_linearly_in_t():
    # Below 8 steps XLA keeps the layer's input and recomputes the membrane chain; keeping every
    # step's membrane from 8 steps on made the memory grow 2.44x from T = 8 to 16 here.
    sizes = [_layer_bptt_temp_bytes(t) for t in (4, 8, 16)]
    assert all(b <= 2.1 * a for a, b in zip(sizes, sizes[1:], strict=False)), sizes
    assert _layer_bptt_temp_bytes(16, every=1) > 1.15 * sizes[2]  # the option keeps every step's membrane


def test_short_windows_compile_as_before():
    # Below CARRY_ONCE_MIN_TIMESTEPS nothing is added: the same kernels as a plain scan of lif_step.
    below, at = CARRY_ONCE_MIN_TIMESTEPS - 1, CARRY_ONCE_MIN_TIMESTEPS
    assert _lif_kernels(below, False) == _lif_kernels(below, False, _plain_scan)
    assert _lif_kernels(at, False) != _lif_kernels(at, False, _plain_scan)
