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


@pytest.fixture(scope="module")
def eq15_case():
    """x with N = C*H*W = 1024 per sample; the library's dL/dX in float64 for an uncorrelated
    upstream gradient g and for g = X, with L = sum(g * agmm(x, alpha))."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 8, 8, 8, 16))
    alpha = np.array([1.0, 0.5, 2.0, -1.0])
    g = rng.normal(size=x.shape)
    with jax.enable_x64(True):
        grad = jax.jit(jax.grad(lambda v, a, u: jnp.sum(u * agmm(v, a))))
        lib = {name: np.asarray(grad(jnp.asarray(x), jnp.asarray(alpha), jnp.asarray(u))) for name, u in (("g", g), ("x", x))}
    return x, alpha, g, lib


def test_library_gradient_matches_finite_differences(eq15_case):
    """<dL/dX, v> from jax.grad of ops.agmm against central differences of L along random
    directions v, in float64; L = sum(g * agmm(x, alpha)) evaluated by the library's forward."""
    x, alpha, g, lib = eq15_case
    rng = np.random.default_rng(3)
    h = 1e-5
    with jax.enable_x64(True):
        loss = jax.jit(lambda v, u: jnp.sum(u * agmm(v, jnp.asarray(alpha))))
        for name, u in (("g", g), ("x", x)):
            for _ in range(3):
                v = rng.normal(size=x.shape)
                fd = (float(loss(x + h * v, u)) - float(loss(x - h * v, u))) / (2 * h)
                assert np.sum(lib[name] * v) == pytest.approx(fd, rel=1e-6), name


def test_how_far_eq15_is_from_exact(eq15_case):
    """The library's gradient (jax.grad of ops.agmm) against the paper's Eq. 15, dX'/dX ~ sigma(E).

    Eq. 15 keeps only sigma(E) g. The term it neglects is sigma'(E) alpha/N sum(g X) (Eq. 13-14,
    derived by hand in eq13_vjp): the difference between the library's gradient and Eq. 15 must
    be exactly that term. With upstream gradients uncorrelated with X it is about
    0.5/sqrt(N) of the kept one (sum(g X) ~ sqrt(N), sigma' ~ 1/4, sigma ~ 1/2); when g
    correlates with X (here g = X, sum(g X) ~ N) it is of the same order as the kept term and
    the approximation does not hold. A library that implemented Eq. 15 itself (the sigmoid
    detached) would sit at distance 0 from it, and fail the lower bounds.
    """
    x, alpha, g, lib = eq15_case
    n = 8 * 8 * 16
    rel = lambda a, b: np.linalg.norm(a - b) / np.linalg.norm(a)
    s = sigmoid(alpha[:, None] * x.mean(axis=(2, 3, 4)))[..., None, None, None]

    eq15 = s * g
    assert 0.25 / np.sqrt(n) < rel(lib["g"], eq15) < 1.0 / np.sqrt(n)
    neglected = lib["g"] - eq15
    np.testing.assert_allclose(neglected, eq13_vjp(x, alpha, g)[0] - eq15, rtol=1e-9, atol=1e-12)
    # one value per sample and time step: the gate's gradient is spread evenly over the C*H*W
    np.testing.assert_allclose(neglected, np.broadcast_to(neglected[:, :, :1, :1, :1], x.shape), rtol=1e-9, atol=1e-12)

    eq15_corr = s * x
    assert rel(lib["x"], eq15_corr) > 0.3
    np.testing.assert_allclose(lib["x"], eq13_vjp(x, alpha, x)[0], rtol=1e-9, atol=1e-12)


def test_alpha_shape_is_checked_and_bfloat16_works():
    x = jnp.ones((3, 2, 4))
    with pytest.raises(ValueError, match=r"expected \[T\]"):
        agmm(x, jnp.ones(2))
    with pytest.raises(ValueError, match="time-major"):
        agmm(jnp.ones((3, 2)), jnp.ones(3))
    assert agmm(x.astype(jnp.bfloat16), jnp.ones(3)).dtype == jnp.bfloat16
    out = jax.jit(jax.vmap(agmm, in_axes=(1, None), out_axes=1))(jnp.ones((3, 5, 2, 4)), jnp.ones(3))
    assert out.shape == (3, 5, 2, 4)
