"""2-D loss landscapes around a trained point (Li et al. 2018; AGMM Fig. 2 and 7)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from bsnn_jax.ops import compiler


def filter_normalized_direction(params, key: jax.Array):
    """A random direction with each filter rescaled to the norm of the matching filter of ``params``.

    Li et al. 2018, Sec. 4: ``d_{i,j} <- d_{i,j} / ||d_{i,j}|| * ||theta_{i,j}||`` for filter j of
    layer i, so that the plot's scale is comparable across networks whose weights have different
    scales (a binary net's latent weights, or BN-rescaled ones). A filter is one output channel,
    the last axis of a Flax kernel. Vectors (biases, BN scale and shift, AGMM alpha) get a zero
    direction, as in the paper's ``ignore biasbn`` setting.
    """
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    out = []
    for leaf, k in zip(leaves, keys, strict=True):
        if leaf.ndim < 2:
            out.append(jnp.zeros_like(leaf))
            continue
        d = jax.random.normal(k, leaf.shape, leaf.dtype)
        axes = tuple(range(leaf.ndim - 1))
        out.append(d * _filter_norm(leaf, axes) / (_filter_norm(d, axes) + 1e-10))
    return jax.tree.unflatten(treedef, out)


def _filter_norm(w: jax.Array, axes: tuple[int, ...]) -> jax.Array:
    """The norm of each filter (output channel) of ``w``, kept broadcastable against it."""
    return jnp.sqrt(jnp.sum(w * w, axis=axes, keepdims=True))


def loss_surface(
    loss_fn: Callable[..., jax.Array],
    params,
    directions: tuple,
    coords: np.ndarray,
    *,
    chunk: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """``L(theta + a d1 + b d2)`` on the grid ``coords x coords``, evaluated ``chunk`` points at a time.

    Args:
      loss_fn: ``params -> scalar loss`` on a fixed evaluation set (model in evaluation mode).
      params: the trained point theta.
      directions: ``(d1, d2)``, pytrees like ``params`` (``filter_normalized_direction``).
      coords: 1-D step sizes, e.g. ``np.linspace(-1, 1, 21)``.
      chunk: grid points per compiled call, vmapped; bounds memory for large models.
      progress: called as ``progress(rows_done, rows)`` each time grid rows are complete.

    Returns:
      ``[len(coords), len(coords)]`` array, rows indexed by ``a`` (along d1), columns by ``b``.
    """
    d1, d2 = directions
    a, b = np.meshgrid(coords, coords, indexing="ij")
    points = np.stack([a.ravel(), b.ravel()], axis=1).astype(np.float32)
    pad = (-len(points)) % chunk
    padded = np.concatenate([points, np.zeros((pad, 2), np.float32)])

    @compiler.jit
    def evaluate(ab):
        def one(p):
            moved = jax.tree.map(lambda t, u, v: t + p[0] * u + p[1] * v, params, d1, d2)
            return loss_fn(moved)

        return jax.vmap(one)(ab)

    parts, rows_done = [], 0
    for i in range(0, len(padded), chunk):
        parts.append(np.asarray(evaluate(padded[i : i + chunk])))
        rows = min(i + chunk, len(points)) // len(coords)
        if progress is not None and rows > rows_done:
            rows_done = rows
            progress(rows_done, len(coords))
    return np.concatenate(parts)[: len(points)].reshape(a.shape)
