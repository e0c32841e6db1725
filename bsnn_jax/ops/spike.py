"""Spike generation: Heaviside forward, surrogate-gradient backward.

AGMM Eq. 3 fires where the membrane reaches the threshold, S = 1 if U >= V_th; Eq. 7 replaces
the Dirac derivative with a triangle. The other surrogates users of SpikingJelly and snnTorch
expect are selectable by name.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp


def triangle(x: jax.Array, beta) -> jax.Array:
    """AGMM Eq. 7: dS/dU = max(0, beta - |U - V_th|), with x = U - V_th."""
    return jnp.maximum(0.0, beta - jnp.abs(x))


def sigmoid(x: jax.Array, alpha) -> jax.Array:
    """Derivative of sigmoid(alpha x): alpha * s * (1 - s), s = sigmoid(alpha x).

    SpikingJelly's ``surrogate.Sigmoid``; the BSO code uses alpha = 4.
    """
    s = jax.nn.sigmoid(alpha * x)
    return alpha * s * (1.0 - s)


def arctan(x: jax.Array, alpha) -> jax.Array:
    """Derivative of arctan(pi/2 alpha x)/pi + 1/2: (alpha/2) / (1 + (pi/2 alpha x)^2)."""
    return (alpha / 2.0) / (1.0 + (jnp.pi / 2.0 * alpha * x) ** 2)


def rectangular(x: jax.Array, width) -> jax.Array:
    """Boxcar of unit area: 1/width where |x| < width/2, else 0 (STBP, Wu et al. 2018)."""
    return jnp.where(jnp.abs(x) < width / 2.0, 1.0 / width, 0.0).astype(x.dtype)


SURROGATES: dict[str, Callable[[jax.Array, float], jax.Array]] = {
    "triangle": triangle,
    "sigmoid": sigmoid,
    "arctan": arctan,
    "rectangular": rectangular,
}


def check_surrogate(name: str) -> str:
    """Returns ``name`` if it is a known surrogate, else raises a ValueError listing them."""
    if name not in SURROGATES:
        raise ValueError(f"unknown surrogate {name!r}; known: {sorted(SURROGATES)}")
    return name


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _heaviside(x: jax.Array, shape_param, surrogate: str) -> jax.Array:
    return (x >= 0).astype(x.dtype)


def _heaviside_fwd(x, shape_param, surrogate):
    return _heaviside(x, shape_param, surrogate), (x, shape_param)


def _heaviside_bwd(surrogate, residuals, g):
    x, shape_param = residuals
    dx = g * SURROGATES[surrogate](x, shape_param).astype(g.dtype)
    # The surrogate's shape is a hyper-parameter, not something to learn.
    return dx, jnp.zeros_like(shape_param)


_heaviside.defvjp(_heaviside_fwd, _heaviside_bwd)


def spike(u: jax.Array, v_th=1.0, beta=1.0, surrogate: str = "triangle") -> jax.Array:
    r"""Fires where the membrane reaches threshold (AGMM Eq. 3) with a surrogate gradient.

    $$S = \Theta(u - V_{th}), \qquad
    \frac{\partial S}{\partial u} \approx \max\bigl(0, \beta - |u - V_{th}|\bigr) \quad \text{(triangle, Eq. 7)}$$

    Forward: ``S = 1[u >= v_th]`` in the dtype of ``u``.
    Backward: ``dS/du = surrogate(u - v_th; beta)``, by default the triangle of AGMM Eq. 7,
    ``max(0, beta - |u - v_th|)``. ``dS/dv_th`` is the negative of that, so a learnable
    threshold works; ``beta`` gets no gradient.

    Args:
      u: membrane potential, any shape, floating dtype.
      v_th: firing threshold (scalar or broadcastable array).
      beta: the surrogate's shape parameter: the triangle's half-width (Eq. 7), the slope
        alpha of ``sigmoid`` and ``arctan``, the width of ``rectangular``.
      surrogate: one of ``SURROGATES``: "triangle", "sigmoid", "arctan", "rectangular".

    Returns:
      Spikes in {0, 1}, same shape and dtype as ``u``.
    """
    if not jnp.issubdtype(jnp.asarray(u).dtype, jnp.floating):
        raise TypeError(f"spike expects a floating membrane potential, got dtype {jnp.asarray(u).dtype}")
    u = jnp.asarray(u)
    x = u - jnp.asarray(v_th, u.dtype)
    return _heaviside(x, jnp.asarray(beta, u.dtype), check_surrogate(surrogate))
