import jax
import jax.numpy as jnp
import numpy as np

from bsnn_jax.analysis import filter_normalized_direction, loss_surface


def test_two_parameter_toy_loss_with_known_minimum():
    # L = (x - 1)^2 + 3 (y + 2)^2, minimum at (1, -2); along the axes the surface is a^2 + 3 b^2.
    loss = lambda p: (p["x"] - 1.0) ** 2 + 3.0 * (p["y"] + 2.0) ** 2
    params = {"x": jnp.array(1.0), "y": jnp.array(-2.0)}
    dirs = ({"x": jnp.array(1.0), "y": jnp.array(0.0)}, {"x": jnp.array(0.0), "y": jnp.array(1.0)})
    coords = np.linspace(-1.0, 1.0, 5)
    calls = []
    surface = loss_surface(loss, params, dirs, coords, chunk=4, progress=lambda *c: calls.append(c))  # 25 points: exercises padding
    a, b = np.meshgrid(coords, coords, indexing="ij")
    np.testing.assert_allclose(surface, a**2 + 3 * b**2, atol=1e-6)
    # rows of 5 points, chunks of 4: rows complete after points 8, 12, 16, 20, 25
    assert calls == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]
    assert np.unravel_index(np.argmin(surface), surface.shape) == (2, 2)


def test_filter_normalisation():
    rng = np.random.default_rng(0)
    params = {"kernel": jnp.asarray(rng.normal(size=(3, 3, 4, 5)) * np.arange(1, 6)), "bias": jnp.ones(5)}
    d = filter_normalized_direction(params, jax.random.key(0))
    norms = lambda w: np.linalg.norm(np.asarray(w).reshape(-1, w.shape[-1]), axis=0)
    np.testing.assert_allclose(norms(d["kernel"]), norms(params["kernel"]), rtol=1e-5)
    assert not np.any(np.asarray(d["bias"]))
    # a different key gives a different direction of the same per-filter norms
    d2 = filter_normalized_direction(params, jax.random.key(1))
    assert not np.allclose(np.asarray(d["kernel"]), np.asarray(d2["kernel"]))
