import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bsnn_jax.ops import binarize, channel_scale, sign_ste

W = np.array([[0.5, -2.0, 0.0], [0.0, -0.3, 1.0], [-0.7, 0.4, 1.5]], np.float32)  # [in=3, out=3]


def test_sign_zero_is_plus_one_and_ste_mask():
    np.testing.assert_array_equal(np.asarray(sign_ste(jnp.asarray(W))), np.where(W >= 0, 1, -1))
    g = jax.grad(lambda w: jnp.sum(sign_ste(w) * jnp.arange(9.0).reshape(3, 3)))(jnp.asarray(W))
    np.testing.assert_array_equal(np.asarray(g), np.arange(9.0).reshape(3, 3) * (np.abs(W) <= 1))


def test_scale_is_mean_abs_per_output_channel_of_flax_kernels():
    k = np.random.default_rng(0).normal(size=(3, 3, 4, 5)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(channel_scale(jnp.asarray(k))), np.abs(k).reshape(-1, 5).mean(0), rtol=1e-6)


def test_binarize_hand_worked():
    gamma = np.array([(0.5 + 0 + 0.7) / 3, (2 + 0.3 + 0.4) / 3, (0 + 1 + 1.5) / 3], np.float32)
    expected = gamma * np.where(W >= 0, 1, -1)
    np.testing.assert_allclose(np.asarray(binarize(jnp.asarray(W))), expected, rtol=1e-6)


@pytest.mark.parametrize("detach", [False, True])
def test_binarize_gradient_matches_hand_formula(detach):
    rng = np.random.default_rng(1)
    up = rng.normal(size=W.shape).astype(np.float32)  # dL/dw_b
    g = jax.grad(lambda w: jnp.sum(binarize(w, detach_scale=detach) * up))(jnp.asarray(W))
    sign, n = np.where(W >= 0, 1, -1), W.shape[0]
    gamma = np.abs(W).mean(0)
    expected = gamma * (np.abs(W) <= 1) * up
    if not detach:
        expected = expected + sign / n * (sign * up).sum(0)
    np.testing.assert_allclose(np.asarray(g), expected, rtol=1e-5, atol=1e-6)


def test_scale_gradient_term_matches_finite_differences():
    # Away from zero, sign(w) is locally constant, so the true derivative of gamma * sign(w)
    # is the scale term alone: the full gradient minus the STE term.
    rng = np.random.default_rng(2)
    w = rng.uniform(0.2, 0.9, size=(4, 3)).astype(np.float64) * rng.choice([-1, 1], size=(4, 3))
    up = rng.normal(size=w.shape)
    full = np.asarray(jax.grad(lambda v: jnp.sum(binarize(v) * up))(jnp.asarray(w, jnp.float32)))
    ste_only = np.asarray(jax.grad(lambda v: jnp.sum(binarize(v, detach_scale=True) * up))(jnp.asarray(w, jnp.float32)))
    eps, fd = 1e-4, np.zeros_like(w)
    for idx in np.ndindex(w.shape):
        d = np.zeros_like(w)
        d[idx] = eps
        f = lambda v: np.sum(np.abs(v).mean(0) * np.sign(v) * up)
        fd[idx] = (f(w + d) - f(w - d)) / (2 * eps)
    np.testing.assert_allclose(full - ste_only, fd, rtol=1e-3, atol=1e-4)


def test_plus_minus_one_kernel_maps_to_itself():
    k = jnp.asarray(np.where(W >= 0, 1.0, -1.0))
    np.testing.assert_array_equal(np.asarray(binarize(k)), np.asarray(k))


def test_vmap_jit_bfloat16_and_bad_shape():
    ks = jnp.asarray(np.stack([W, 2 * W]))
    out = jax.jit(jax.vmap(binarize))(ks)
    np.testing.assert_allclose(np.asarray(out[1]), 2 * np.asarray(binarize(jnp.asarray(W))), rtol=1e-6)
    assert binarize(jnp.asarray(W, jnp.bfloat16)).dtype == jnp.bfloat16
    with pytest.raises(ValueError, match="output channel last"):
        binarize(jnp.ones(3))
