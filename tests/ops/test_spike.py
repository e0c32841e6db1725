import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bsnn_jax.ops import SURROGATES, spike

U = np.array([-1.5, -0.4, 0.2, 0.99, 1.0, 1.3, 1.75, 2.6], np.float32)


def hand_surrogate(name, x, p):
    """The surrogate derivatives written out independently of the library, in numpy."""
    if name == "triangle":
        return np.maximum(0.0, p - np.abs(x))
    if name == "sigmoid":
        s = 1 / (1 + np.exp(-p * x))
        return p * s * (1 - s)
    if name == "arctan":
        return p / 2 / (1 + (np.pi / 2 * p * x) ** 2)
    if name == "rectangular":
        return (np.abs(x) < p / 2) / p
    raise AssertionError(name)


def test_forward_is_heaviside_with_equality_firing():
    s = spike(jnp.asarray(U), 1.0)
    np.testing.assert_array_equal(np.asarray(s), (U >= 1.0).astype(np.float32))


@pytest.mark.parametrize("name", sorted(SURROGATES))
@pytest.mark.parametrize("param", [0.5, 1.0, 4.0])
def test_gradient_is_the_named_surrogate(name, param):
    g = jax.grad(lambda u: jnp.sum(spike(u, 1.0, param, name)))(jnp.asarray(U))
    np.testing.assert_allclose(np.asarray(g), hand_surrogate(name, U - 1.0, param), rtol=1e-5, atol=1e-7)


def test_triangle_default_is_agmm_eq7_with_beta_one():
    g = jax.grad(lambda u: jnp.sum(spike(u)))(jnp.asarray(U))
    np.testing.assert_allclose(np.asarray(g), np.maximum(0, 1 - np.abs(U - 1)), rtol=1e-6)


@pytest.mark.parametrize(
    "name, primitive",
    [
        ("sigmoid", lambda x, a: jax.nn.sigmoid(a * x)),
        ("arctan", lambda x, a: jnp.arctan(jnp.pi / 2 * a * x) / jnp.pi + 0.5),
    ],
)
def test_smooth_surrogates_match_finite_differences_of_their_primitive(name, primitive):
    x = jnp.asarray(U - 1.0, jnp.float64) if jax.config.x64_enabled else jnp.asarray(U - 1.0)
    eps = 1e-3
    fd = (primitive(x + eps, 4.0) - primitive(x - eps, 4.0)) / (2 * eps)
    np.testing.assert_allclose(np.asarray(SURROGATES[name](x, 4.0)), np.asarray(fd), rtol=2e-3, atol=2e-4)


def test_threshold_gradient_is_minus_the_surrogate():
    g = jax.grad(lambda v: jnp.sum(spike(jnp.asarray(U), v)))(1.0)
    assert float(g) == pytest.approx(-np.maximum(0, 1 - np.abs(U - 1)).sum(), rel=1e-6)


def test_unknown_surrogate_and_integer_input_are_clear_errors():
    with pytest.raises(ValueError, match="known: .*triangle"):
        spike(jnp.ones(3), surrogate="erf")
    with pytest.raises(TypeError, match="floating"):
        spike(jnp.ones(3, jnp.int32))


def test_jit_vmap_scan_and_bfloat16():
    u = jnp.asarray(U).reshape(2, 4)
    f = jax.jit(jax.vmap(jax.grad(lambda r: jnp.sum(spike(r, 1.0, 1.0, "sigmoid")))))
    np.testing.assert_allclose(np.asarray(f(u)).ravel(), hand_surrogate("sigmoid", U - 1, 1.0), rtol=1e-5)

    _, ys = jax.lax.scan(lambda c, r: (c, spike(r)), 0.0, u)
    np.testing.assert_array_equal(np.asarray(ys).ravel(), (U >= 1).astype(np.float32))

    ub = u.astype(jnp.bfloat16)
    sb, gb = spike(ub), jax.grad(lambda r: jnp.sum(spike(r)))(ub)
    assert sb.dtype == gb.dtype == jnp.bfloat16
    np.testing.assert_allclose(
        np.asarray(gb, np.float32).ravel(), hand_surrogate("triangle", np.asarray(ub, np.float32).ravel() - 1, 1.0), atol=1e-2
    )
