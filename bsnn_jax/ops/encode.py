"""Spike encoders: how a real-valued input becomes the T-step input stream of a spiking network.

Pure functions on arrays; every output is time-major ``[T, ...]``. Intensities for ``rate`` and
``latency`` are in [0, 1] (values outside are clipped); ``delta`` reads a time-major signal.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

ENCODERS = ("direct", "rate", "latency", "delta")


def direct(x: jax.Array, timesteps: int) -> jax.Array:
    """Direct encoding (current injection): ``X[t] = x`` for every t, the real value fed to the first
    layer at each step (AGMM's and TET's input layer; the first layer's LIF makes the spikes)."""
    return jnp.broadcast_to(x, (timesteps,) + x.shape)


def rate(key: jax.Array, x: jax.Array, timesteps: int) -> jax.Array:
    """Rate (Bernoulli) coding: ``S[t] ~ Bernoulli(p)``, ``p = clip(x, 0, 1)``, independent over t and
    elements, so the expected spike count over T steps is ``T * p`` (snnTorch's ``spikegen.rate``)."""
    p = jnp.clip(x, 0.0, 1.0)
    return jax.random.bernoulli(key, p, (timesteps,) + x.shape).astype(x.dtype)


def latency(x: jax.Array, timesteps: int, *, threshold: float = 0.0) -> jax.Array:
    """Time-to-first-spike coding, linear in the intensity: one spike at ``t_f = round((1 - p)(T - 1))``,
    ``p = clip(x, 0, 1)``, so p = 1 fires at t = 0 and p -> 0 at t = T - 1; inputs with ``p <= threshold``
    never fire (snnTorch's ``spikegen.latency(linear=True, normalize=True)``)."""
    p = jnp.clip(x, 0.0, 1.0)
    first = jnp.round((1.0 - p) * (timesteps - 1))
    t = jnp.arange(timesteps, dtype=x.dtype).reshape((-1,) + (1,) * x.ndim)
    return ((t == first) & (p > threshold)).astype(x.dtype)


def delta(x: jax.Array, threshold: float) -> jax.Array:
    """Delta (send-on-delta) coding of a time-major signal ``x[t]``: a spike each time the signal moves
    ``threshold`` away from the level last signalled. With the reference ``r[-1] = x[0]``,
    ``n[t] = trunc((x[t] - r[t-1]) / threshold)`` and ``r[t] = r[t-1] + n[t] * threshold``: ``n[t]``
    counts the threshold crossings at step t, positive upwards (ON) and negative downwards (OFF)."""
    if threshold <= 0:
        raise ValueError(f"delta encoding needs threshold > 0, got {threshold}")

    def step(reference, x_t):
        n = jnp.trunc((x_t - reference) / threshold)
        return reference + n * threshold, n

    _, counts = lax.scan(step, x[0], x)
    return counts
