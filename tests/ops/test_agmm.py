import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from bsnn_jax.ops import agmm


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def eq13_vjp(x, alpha, g):
    """dL/dX of Eq. 11 written out from Eq. 13-14.

    dL/dX_j = sum_i g_i dX'_i/dX_j = sigma(E) g_j + sigma'(E) alpha/N sum_i g_i X_i: the second
    term of Eq. 13 is the same for every element of one sample and time step.
    """
    n = np.prod(x.shape[2:])
    e = alpha[:, None] * x.reshape(x.shape[:2] + (-1,)).mean(-1)  # [T, B]
    s = sigmoid(e)
    gx = (g * x).reshape(x.shape[:2] + (-1,)).sum(-1)
    extra = s * (1 - s) * alpha[:, None] / n * gx
    return s[..., None, None, None] * g + extra[..., None, None, None], s


def test_forward_matches_eq11():
    x = np.random.default_rng(0).normal(size=(3, 2, 4, 4, 5)).astype(np.float32)
    alpha = np.array([1.0, -0.5, 2.0], np.float32)
    e = alpha[:, None] * x.mean(axis=(2, 3, 4))
    np.testing.assert_allclose(np.asarray(agmm(jnp.asarray(x), jnp.asarray(alpha))), sigmoid(e)[..., None, None, None] * x, rtol=1e-5)


def test_gradient_is_exact_eq13_and_smooth():
    rng = np.random.default_rng(1)
    x = rng.normal(0.3, 1.0, size=(2, 3, 4, 4, 8)).astype(np.float32)
    alpha = np.array([1.5, 0.7], np.float32)
    g = rng.normal(size=x.shape).astype(np.float32)
    _, vjp = jax.vjp(lambda v: agmm(v, jnp.asarray(alpha)), jnp.asarray(x))
    expected, _ = eq13_vjp(x, alpha, g)
    np.testing.assert_allclose(np.asarray(vjp(jnp.asarray(g))[0]), expected, rtol=1e-4, atol=1e-6)
    check_grads(agmm, (jnp.asarray(x[:, :, :2, :2, :2]), jnp.asarray(alpha)), order=1, modes=["rev"], eps=1e-2, atol=5e-2, rtol=5e-2)


def test_how_far_eq15_is_from_exact():
    """Eq. 15 keeps only sigma(E) g. The neglected term is sigma'(E) alpha/N sum(g X): with upstream
    gradients uncorrelated with X it is O(alpha / sqrt(N)) of the kept one; when g correlates with X
    (here g = X) it is of the same order and the approximation does not hold."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 8, 8, 8, 16)).astype(np.float32)  # N = C*H*W = 1024
    alpha = np.ones(4, np.float32)
    n = 8 * 8 * 16
    rel = lambda a, b: np.linalg.norm(a - b) / np.linalg.norm(a)

    g = rng.normal(size=x.shape).astype(np.float32)
    exact, s = eq13_vjp(x, alpha, g)
    approx = s[..., None, None, None] * g
    assert rel(exact, approx) < 2.0 / np.sqrt(n)  # measured about 0.5/sqrt(N)

    exact_corr, s = eq13_vjp(x, alpha, x)
    assert rel(exact_corr, s[..., None, None, None] * x) > 0.3


def test_alpha_shape_is_checked_and_bfloat16_works():
    x = jnp.ones((3, 2, 4))
    with pytest.raises(ValueError, match=r"expected \[T\]"):
        agmm(x, jnp.ones(2))
    with pytest.raises(ValueError, match="time-major"):
        agmm(jnp.ones((3, 2)), jnp.ones(3))
    assert agmm(x.astype(jnp.bfloat16), jnp.ones(3)).dtype == jnp.bfloat16
    out = jax.jit(jax.vmap(agmm, in_axes=(1, None), out_axes=1))(jnp.ones((3, 5, 2, 4)), jnp.ones(3))
    assert out.shape == (3, 5, 2, 4)
