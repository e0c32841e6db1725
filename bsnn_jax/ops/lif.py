"""Leaky integrate-and-fire neurons over time (AGMM Eq. 1-4), scanned with ``lax.scan``."""

from __future__ import annotations

import dataclasses
import functools
import numbers

import jax
import jax.numpy as jnp
from jax import lax

from bsnn_jax.ops.once import computed_once
from bsnn_jax.ops.spike import SURROGATES, check_surrogate, spike

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


# From this many steps on, an unrolled LIF scan has XLA keep its membrane every
# ``membrane_kept_every`` steps (``scan_keeping_carry``). Below it the chain XLA duplicates is at
# most 7 steps long and nothing is added: keeping U[t] at every step instead made the reference
# net's BPTT step at T = 2 and 4 keep 5-8% more and run 2-7% slower
# (``benchmarks/results/bptt_memory.md``, section 9).
CARRY_ONCE_MIN_TIMESTEPS = 8
# The default: 1 membrane kept per 4 steps, each step's kernels recomputing at most 3 steps of the
# chain (what T = 4 does). Keeping every step's costs 4 bytes per neuron and step more than T = 4
# keeps: the reference net's BPTT memory grew 2.31x from T = 4 to 8 with every step kept, 2.08x
# with every 4th, and is 18% lower at T = 32, for more elementwise work (section 12).
MEMBRANE_KEPT_EVERY = 4


def scan_keeping_carry(step, carry, xs, *, unroll, every: int = MEMBRANE_KEPT_EVERY, reverse: bool = False):
    """``lax.scan(step, carry, xs, unroll=unroll, reverse=reverse)`` over a time axis, with the
    carry (an LIF membrane or its gradient) made an array XLA computes once (:func:`computed_once`)
    after every ``every`` steps, from ``CARRY_ONCE_MIN_TIMESTEPS`` steps on.

    XLA fuses an unrolled recurrence into per-step kernels that each recompute the chain from the
    last value it keeps: ``T^2 / 2`` steps of work over T steps with none kept. Keeping every
    ``every``-th carry bounds each chain to ``every`` steps (linear work) and keeps ``1 / every``
    of the carries. The scan runs over chunks of ``every`` fully unrolled steps (``unroll``
    applies to the chunks), the leftover steps last (first when ``reverse``). Same values, bit for
    bit.
    """
    length = jax.tree.leaves(xs)[0].shape[0]
    if every < 1:
        raise ValueError(f"a membrane kept every {every} steps: give a step count >= 1")
    if length < CARRY_ONCE_MIN_TIMESTEPS:
        return lax.scan(step, carry, xs, unroll=unroll, reverse=reverse)
    chunks, tail = divmod(length, every)
    # Chunk boundaries are counted from where the scan starts: the end of xs when reverse.
    cut = tail if reverse else chunks * every
    whole, rest = (slice(cut, None), slice(None, cut)) if reverse else (slice(None, cut), slice(cut, None))

    def chunk(c, x_chunk):
        c, y = lax.scan(step, c, x_chunk, unroll=True, reverse=reverse)
        return jax.tree.map(computed_once, c), y

    blocks = jax.tree.map(lambda a: a[whole].reshape(chunks, every, *a.shape[1:]), xs)
    carry, ys = lax.scan(chunk, carry, blocks, unroll=unroll, reverse=reverse)
    ys = jax.tree.map(lambda a: a.reshape(chunks * every, *a.shape[2:]), ys)
    if tail:
        carry, ys_rest = lax.scan(step, carry, jax.tree.map(lambda a: a[rest], xs), unroll=True, reverse=reverse)
        ys = jax.tree.map(lambda y, r: jnp.concatenate([r, y] if reverse else [y, r]), ys, ys_rest)
    return carry, ys


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
    fused: bool = False,
    save_dtype=None,
    membrane_kept_every: int = MEMBRANE_KEPT_EVERY,
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
      fused: with ``tau``, ``v_th`` and ``beta`` plain numbers, run the whole recurrence as one
        ``jax.custom_vjp`` whose backward keeps only the pre-reset membranes ``H[t]`` (and the
        spikes it returned) and recomputes the surrogate; ``False`` differentiates ``lif_step``
        through the scan (what autodiff keeps per step: H, S, 1 - S, the surrogate's operands).
        Both give the same gradients up to float rounding. Array ``tau``/``v_th``/``beta`` (learned
        or traced) always take the autodiff path. Off by default (``nn.LIF``,
        ``model.neuron.fused``): on XLA:CPU autodiff already keeps only H and S, so the fused form
        compiles to the same buffers (VGG-11 BPTT, also with ``ops.batch_norm``), and it was not
        shown to be never slower at T = 1..4 (``benchmarks/results/bptt_memory.md``); with
        ``save_dtype`` it is the way to a smaller BPTT footprint at long T.
      save_dtype: fused only: the dtype ``H[t]`` is kept in for the backward (e.g.
        ``jnp.bfloat16``: surrogate gradients from a rounded membrane); None: the membrane's own
        dtype (exact). Measured on VGG-11 BPTT (XLA:CPU): 10% less XLA memory at T >= 16, 11%
        more at T <= 8 (the float32 stack of H is built before the cast; cast per step, XLA
        removes the round trip and keeps float32 H, even through a bitcast).
      membrane_kept_every: from ``CARRY_ONCE_MIN_TIMESTEPS`` steps on, how often the unrolled
        scan has XLA keep the membrane for BPTT (``scan_keeping_carry``); between kept membranes
        each step's kernels recompute the chain from the last one. 4 (default): the memory of
        T = 4 per step, the reference net 18% lower at T = 32 than with 1 (every step: the least
        elementwise work). Same values and gradients for any choice.

    Returns:
      spikes ``[T, ...]`` in ``x.dtype``, or ``(spikes, U[T-1])`` when ``return_membrane``.
    """
    x = jnp.asarray(x)
    if x.ndim < 1 or not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"lif_scan expects a floating time-major array [T, ...], got {x.dtype} {x.shape}")
    check_surrogate(surrogate)
    check_reset(reset)
    if u0 is None:
        u0 = jnp.zeros(x.shape[1:], membrane_dtype or x.dtype)
    elif u0.shape != x.shape[1:]:
        raise ValueError(f"u0 has shape {u0.shape}, expected x.shape[1:] = {x.shape[1:]}")

    if fused and all(isinstance(v, numbers.Real) for v in (tau, v_th, beta)):
        saved = save_dtype and jnp.dtype(save_dtype).name
        neuron = _Neuron(float(tau), float(v_th), reset, detach_reset, surrogate, float(beta), unroll, saved, membrane_kept_every)
        spikes, u_last = _lif_fused(x, u0, neuron)
        return (spikes, u_last) if return_membrane else spikes

    def step(u, x_t):
        return lif_step(u, x_t, tau=tau, v_th=v_th, reset=reset, detach_reset=detach_reset, surrogate=surrogate, beta=beta)

    u_last, spikes = scan_keeping_carry(step, u0, x, unroll=unroll, every=membrane_kept_every)
    return (spikes, u_last) if return_membrane else spikes


@dataclasses.dataclass(frozen=True)
class _Neuron:
    """The static (hashable) options of a fused LIF: ``custom_vjp``'s non-differentiable argument."""

    tau: float
    v_th: float
    reset: str
    detach_reset: bool
    surrogate: str
    beta: float
    unroll: int | bool
    save_dtype: str | None
    membrane_kept_every: int


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _lif_fused(x: jax.Array, u0: jax.Array, n: _Neuron) -> tuple[jax.Array, jax.Array]:
    spikes, u_last, _ = _lif_forward(x, u0, n)
    return spikes, u_last


def _lif_forward(x, u0, n: _Neuron):
    """The forward recurrence; also returns the pre-reset membranes H[t] the backward needs."""

    def step(u, x_t):
        h = n.tau * u + x_t
        s = (h - n.v_th >= 0).astype(h.dtype)  # as ops.spike computes it
        u_next = h * (1 - s) if n.reset == "hard" else h - n.v_th * s
        return u_next.astype(u.dtype), (s.astype(x.dtype), h)

    u_last, (spikes, h) = scan_keeping_carry(step, u0, x, unroll=n.unroll, every=n.membrane_kept_every)
    return spikes, u_last, h


def _lif_fused_fwd(x, u0, n: _Neuron):
    spikes, u_last, h = _lif_forward(x, u0, n)
    # Only H[t] is kept (optionally in a narrower dtype): S[t] is the forward's own output, which
    # the next layer keeps anyway, and the surrogate is recomputed from H[t].
    saved = h if n.save_dtype is None else h.astype(n.save_dtype)
    return (spikes, u_last), (saved, spikes)


def _lif_fused_bwd(n: _Neuron, residuals, cotangents):
    saved, spikes = residuals
    g_spikes, g_u_last = cotangents
    h_dtype = jnp.result_type(g_spikes.dtype, g_u_last.dtype)  # H = tau U + X in the wider of the two
    surrogate = SURROGATES[n.surrogate]

    def step(g_u, inputs):
        # The chain rule of lif_step in the order autodiff applies it, so the sums round alike.
        h, s, g_s = inputs
        h, s, g_u = h.astype(h_dtype), s.astype(h_dtype), g_u.astype(h_dtype)
        g_s = g_s.astype(h_dtype)
        if not n.detach_reset:  # the reset term's gradient through S
            g_s = g_s + (-(g_u * h) if n.reset == "hard" else -(g_u * n.v_th))
        g_h = g_s * surrogate(h - n.v_th, jnp.asarray(n.beta, h_dtype)).astype(h_dtype)
        g_h = g_h + (g_u * (1 - s) if n.reset == "hard" else g_u)
        return (n.tau * g_h).astype(g_u_last.dtype), g_h.astype(g_spikes.dtype)

    g_u0, g_x = scan_keeping_carry(step, g_u_last, (saved, spikes, g_spikes), unroll=n.unroll, every=n.membrane_kept_every, reverse=True)
    return g_x, g_u0


_lif_fused.defvjp(_lif_fused_fwd, _lif_fused_bwd)
