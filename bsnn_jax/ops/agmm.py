"""The Adaptive Gradient Modulation Mechanism (AGMM Eq. 11)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def agmm(x: jax.Array, alpha: jax.Array) -> jax.Array:
    r"""X'[t] = sigmoid(E(X[t])) * X[t], E(X[t]) = alpha[t] / (C H W) * sum_{c,h,w} X[t]  (Eq. 11).

    $$X'[t] = \sigma\bigl(E(X[t])\bigr) \odot X[t], \qquad E(X[t]) = \frac{\alpha[t]}{CHW} \sum_{c,h,w} X[t]_{c,h,w}$$

    One gate per sample and time step. Full autograd is used: the gradient keeps the second
    term of Eq. 13, ``X * d sigmoid(E)/dX``, that the paper's Eq. 15 neglects in its analysis.

    Args:
      x: BN output, time-major ``[T, B, ...]`` (``[T, B, H, W, C]`` for convs).
      alpha: the temporal factors, shape ``[T]``.

    Returns:
      The modulated ``[T, B, ...]`` array, same dtype as ``x``.
    """
    alpha = jnp.asarray(alpha)
    if x.ndim < 3:
        raise ValueError(f"agmm expects time-major [T, B, ...] with at least one feature axis, got shape {x.shape}")
    if alpha.shape != (x.shape[0],):
        raise ValueError(f"alpha has shape {alpha.shape}, expected [T] = ({x.shape[0]},) to match x {x.shape}")
    mean = jnp.mean(x, axis=tuple(range(2, x.ndim)), keepdims=True)
    e = alpha.astype(x.dtype).reshape((-1,) + (1,) * (x.ndim - 1)) * mean
    return jax.nn.sigmoid(e) * x
