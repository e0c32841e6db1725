"""Online (one time step at a time) learning: the presynaptic-trace weight gradient of OTTT and
the BSO code's adaptive trace decay."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

TRACES = ("constant", "adaptive")  # OTTT's lambda, or the BSO code's per-neuron ratio


def presynaptic_trace(previous: jax.Array | None, spikes: jax.Array, decay) -> jax.Array:
    """a_hat[t] = decay * a_hat[t-1] + s[t], with a_hat[0] = s[0] (OTTT, Xiao et al. 2022; BSO Alg. 1).

    With ``decay`` equal to the LIF leak, a_hat summarises the past input the membrane still
    remembers, so ``delta[t] a_hat[t]^T`` approximates the BPTT weight gradient without keeping
    the past activations. ``decay`` is a scalar (OTTT) or one factor per neuron
    (:func:`adaptive_decay`, the BSO code).
    """
    return spikes if previous is None else decay * previous + spikes


def adaptive_decay(drive: jax.Array, previous_drive: jax.Array, bound) -> jax.Array:
    """The BSO code's per-neuron trace decay P[t] (``OnlineLIFNode.forward``, hamingsi/BSO @cb01fd4).

    ``P[t] = clamp(safe_divide(n[t], n[t-1], default=bound), -bound, bound)`` with
    ``n[t] = v[t] - V_th s[t]``, where ``v[t]`` is the membrane *after* the reset of step t and
    ``s[t]`` that step's spike (so with a soft reset ``V_th s`` is taken off twice), and
    ``bound = 1 - 1/tau`` (the leak, 0.5). ``safe_divide`` returns ``bound`` where the quotient
    is nan or inf or the denominator is 0; it is the NDOT ratio mu[t] of the BSO paper with the
    code's choice of v. The trace is then ``a_hat[t] = P[t] a_hat[t-1] + s[t]``
    (:func:`presynaptic_trace`); at t = 0 the trace is ``s[0]`` whatever P is.

    Args:
      drive: ``n[t] = v[t] - V_th s[t]`` per neuron.
      previous_drive: ``n[t-1]`` (0 before the first step).
      bound: the clamp and the default, the constant OTTT decay lambda.
    """
    ratio = drive / previous_drive
    bad = (previous_drive == 0) | ~jnp.isfinite(ratio) | ~jnp.isfinite(drive) | ~jnp.isfinite(previous_drive)
    return jnp.clip(jnp.where(bad, bound, ratio), -bound, bound)


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
