"""Running stateless layers over the time axis: folded into the batch, or one step at a time."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def default_time_fold() -> bool:
    """Whether stateless layers should fold T into the batch on the default backend.

    Measured (DESIGN.md): on XLA CPU a Python loop over T inside ``jit`` ran a BSNN training step
    2.5x faster than one folded ``[T*B, ...]`` convolution; on GPUs and TPUs the bigger folded
    matmuls usually win.
    """
    return jax.default_backend() != "cpu"


def time_map(fn: Callable[[jax.Array], jax.Array], x: jax.Array, *, fold: bool) -> jax.Array:
    """Applies a per-sample layer ``fn: [B, ...] -> [B, ...]`` to every step of ``x: [T, B, ...]``.

    ``fold=True`` runs ``fn`` once on ``[T*B, ...]``; ``fold=False`` runs it T times in a Python
    loop, which keeps every convolution straight-line code for XLA (no loop around it).
    Both give the same numbers.
    """
    t, b = x.shape[:2]
    if fold:
        y = fn(x.reshape((t * b,) + x.shape[2:]))
        return y.reshape((t, b) + y.shape[1:])
    return jnp.stack([fn(x[i]) for i in range(t)])
