"""Running stateless layers over the time axis: folded into the batch, or one step at a time."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from bsnn_jax.ops import compiler


def default_time_fold() -> bool:
    """Whether stateless layers should fold T into the batch on the default backend.

    Folding gives each convolution a T-times bigger batch and no per-step slicing and stacking.
    Measured with ``bsnn bench`` (ratio "T folded into batch / per time step", reference net,
    T=4, 2-core CPU): with the library's XLA:CPU options (``ops.compiler``: Eigen convolutions)
    the folded step took 0.86x the per-step time and 20% less XLA memory; with XLA's default
    YNNPACK convolutions the per-step loop was faster (1.59 s against 1.95 s). GPUs and TPUs
    favour the bigger folded matmuls.
    """
    return jax.default_backend() != "cpu" or compiler.compiler_options() is not None


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
