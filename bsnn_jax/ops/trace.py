"""Online (one time step at a time) learning: the presynaptic-trace weight gradient of OTTT."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def presynaptic_trace(previous: jax.Array | None, spikes: jax.Array, decay) -> jax.Array:
    """a_hat[t] = decay * a_hat[t-1] + s[t], with a_hat[0] = s[0] (OTTT, Xiao et al. 2022; BSO Alg. 1).

    With ``decay`` equal to the LIF leak, a_hat summarises the past input the membrane still
    remembers, so ``delta[t] a_hat[t]^T`` approximates the BPTT weight gradient without keeping
    the past activations.
    """
    return spikes if previous is None else decay * previous + spikes


def trace_gradient(apply: Callable[[jax.Array, jax.Array], jax.Array], x: jax.Array, trace: jax.Array, w: jax.Array) -> jax.Array:
    """``apply(x, w)`` whose weight gradient is taken as if the input were ``trace``.

    Forward: ``y = apply(x, w)``. Backward: ``dL/dx = (d apply(x, w)/dx)^T g`` as usual, and
    ``dL/dw = (d apply(trace, w)/dw)^T g``: for a linear layer ``g trace^T``, the OTTT / BSO
    instantaneous gradient ``nabla_W L[t] = delta[t] a_hat[t]^T``. ``apply`` must be linear in its
    first argument (a conv or matmul). No gradient reaches ``trace``.
    """

    @jax.custom_vjp
    def replaced(x, trace, w):
        return apply(x, w)

    def fwd(x, trace, w):
        return apply(x, w), (x, trace, w)

    def bwd(residuals, g):
        x, trace, w = residuals
        _, vjp_x = jax.vjp(lambda v: apply(v, w), x)
        _, vjp_w = jax.vjp(lambda v: apply(trace, v), w)
        return vjp_x(g)[0], jnp.zeros_like(trace), vjp_w(g)[0]

    replaced.defvjp(fwd, bwd)
    return replaced(x, trace, w)
