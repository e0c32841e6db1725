"""Rematerialisation that survives XLA:CPU: ``jax.checkpoint`` whose recomputation waits for the gradient.

``jax.checkpoint`` (and ``nnx.remat``) mark the recomputed forward with optimisation barriers so
that XLA does not merge it back into the original forward pass. XLA:CPU removes those barriers
before fusion (no ``opt-barrier`` is left in its optimised HLO), common-subexpression
elimination then merges the recomputation with the forward, and every value the policy meant to
drop is kept: the same bytes as without remat (``benchmarks/results/bptt_memory.md``).
:func:`remat` adds ``0 * g`` (one element of the incoming gradient) to each saved residual
before recomputing. ``0 * v`` is not folded for floats (it is NaN for infinite ``v``), so the
recomputation depends on the gradient: XLA can neither merge it with the forward pass nor
schedule it before the gradient arrives, on any backend.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _anchor(cotangents) -> jax.Array:
    """``0 * g[0]`` of the first floating-point cotangent: a zero that XLA cannot compute early."""
    for leaf in jax.tree.leaves(cotangents):
        if jnp.issubdtype(leaf.dtype, jnp.inexact) and leaf.size:
            return 0 * leaf.reshape(-1)[0]
    return jnp.zeros((), jnp.float32)


def _tie(residuals, anchor: jax.Array):
    """Every floating-point residual ``r`` as ``r + anchor``: the same values, computed after ``anchor``."""

    def tie(r):
        if isinstance(r, jax.Array) and jnp.issubdtype(r.dtype, jnp.inexact):
            return r + anchor.astype(r.dtype)
        return r

    return jax.tree.map(tie, residuals)


def remat(fn, policy=None):
    """``fn`` differentiated as ``jax.checkpoint(fn, policy=policy)``: the forward keeps only
    what ``policy`` saves (``jax.checkpoint_policies``; None keeps only the inputs) and the
    backward recomputes the rest, after the incoming gradient is known.

    Same values and gradients as ``fn`` (the recomputation adds an exact zero). ``fn`` must be a
    pure function of its (pytree) arguments.
    """
    checkpointed = jax.checkpoint(fn, policy=policy)

    @jax.custom_vjp
    def call(*args):
        return fn(*args)

    def forward(*args):
        return jax.vjp(checkpointed, *args)  # (output, pullback): the pullback is a pytree of residuals

    def backward(pullback, g):
        return _tie(pullback, _anchor(g))(g)

    call.defvjp(forward, backward)
    return call
