"""Leaky integrate-and-fire neurons over time (AGMM Eq. 1-4), scanned with ``lax.scan``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from bsnn_jax.ops.spike import check_surrogate, spike

RESETS = ("hard", "soft")


def check_reset(reset: str) -> str:
    """Returns ``reset`` if it is "hard" or "soft", else raises a ValueError."""
    if reset not in RESETS:
        raise ValueError(f"unknown reset {reset!r}; known: {RESETS}")
    return reset


def lif_step(
    u: jax.Array,
    x: jax.Array,
    *,
    tau=0.5,
    v_th=1.0,
    reset: str = "hard",
    detach_reset: bool = False,
    surrogate: str = "triangle",
    beta=1.0,
) -> tuple[jax.Array, jax.Array]:
    """One LIF time step, AGMM Eq. 1, 3, 4.

    ``H = tau * U[t-1] + X[t]`` (Eq. 1: leak first, input unscaled), ``S = 1[H >= v_th]``
    (Eq. 3, surrogate gradient of Eq. 7), then the reset:

    - ``"hard"`` (Eq. 4): ``U[t] = H * (1 - S)``;
    - ``"soft"``: ``U[t] = H - v_th * S`` (the BSO code's ``OnlineLIFNode``).

    ``detach_reset=True`` stops the gradient through S in the reset term (SpikingJelly's
    ``detach_reset``); the AGMM/Q-SNN code lets it flow, so the default is False.

    Returns ``(U[t], S[t])``; S has the dtype of ``x``.
    """
    check_reset(reset)
    h = tau * u + x
    s = spike(h, v_th, beta, surrogate)
    s_reset = lax.stop_gradient(s) if detach_reset else s
    u_next = h * (1 - s_reset) if reset == "hard" else h - v_th * s_reset
    return u_next.astype(u.dtype), s.astype(x.dtype)


def lif_scan(
    x: jax.Array,
    tau=0.5,
    v_th=1.0,
    *,
    reset: str = "hard",
    detach_reset: bool = False,
    surrogate: str = "triangle",
    beta=1.0,
    u0: jax.Array | None = None,
    membrane_dtype=None,
    unroll: int | bool = True,
    return_membrane: bool = False,
):
    """Runs ``lif_step`` over the leading (time) axis of ``x`` with ``lax.scan``.

    Args:
      x: input current ``X[t]``, time-major ``[T, ...]``.
      tau, v_th, reset, detach_reset, surrogate, beta: as in ``lif_step``.
      u0: initial membrane ``U[-1]``, shape ``x.shape[1:]``; zeros by default (Q-SNN code).
      membrane_dtype: dtype of the membrane when ``u0`` is not given; defaults to ``x.dtype``.
        ``jnp.float32`` with bf16 ``x`` keeps the recurrence in full precision.
      unroll: passed to ``lax.scan``. ``True`` (default) unrolls all T steps: on XLA CPU a rolled
        scan made the LIF of a [2, 128, 28, 28, 32] layer 20x slower (81 ms vs 3.6 ms fwd+bwd).
      return_membrane: also return the final membrane ``U[T-1]``.

    Returns:
      spikes ``[T, ...]`` in ``x.dtype``, or ``(spikes, U[T-1])`` when ``return_membrane``.
    """
    x = jnp.asarray(x)
    if x.ndim < 1 or not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"lif_scan expects a floating time-major array [T, ...], got {x.dtype} {x.shape}")
    check_surrogate(surrogate)
    if u0 is None:
        u0 = jnp.zeros(x.shape[1:], membrane_dtype or x.dtype)
    elif u0.shape != x.shape[1:]:
        raise ValueError(f"u0 has shape {u0.shape}, expected x.shape[1:] = {x.shape[1:]}")

    def step(u, x_t):
        return lif_step(u, x_t, tau=tau, v_th=v_th, reset=reset, detach_reset=detach_reset, surrogate=surrogate, beta=beta)

    u_last, spikes = lax.scan(step, u0, x, unroll=unroll)
    return (spikes, u_last) if return_membrane else spikes
