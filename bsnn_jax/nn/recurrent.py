"""A recurrent LIF layer: each neuron also hears the layer's own spikes of the step before.

The recurrent current enters inside the neuron's time loop, so unlike every other layer it cannot
run time-folded: BPTT scans ``ops.lif_step`` over T with ``lax.scan``, carrying ``(U[t-1], S[t-1])``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

from bsnn_jax import ops
from bsnn_jax.nn.layers import BinaryLinear
from bsnn_jax.nn.trace import TracingLIF


class RecurrentSpikes(nnx.Variable):
    """A recurrent layer's output of the last online step, S[t-1]: its input at the next step."""


class RecurrentLIF(TracingLIF):
    r"""LIF neurons with all-to-all recurrent weights V (snnTorch's ``RLeaky``, Spyx's ``RLIF``):

    $$H[t] = \tau U[t-1] + X[t] + V_b S[t-1], \qquad S[t] = \Theta(H[t] - V_{th})$$

    then the reset of AGMM Eq. 4, with ``S[-1] = 0`` and ``V_b = binarize(V)`` (AGMM Eq. 5: sign of
    V times its per-output-unit scale mean |V|) when ``binary``, V itself otherwise. ``X[t]`` is the
    feed-forward current as every other layer makes it (``BN(W x)``, then AGMM in the AGMM variant,
    time-folded); the recurrent current is not normalised: V's own per-unit scale is its gain.

    V is a :class:`BinaryLinear` (``self.recurrent``), so flips, the size report and the
    SOP count include it, and the latent-free and online views apply to it. Online (one step per
    call), ``S[t-1]`` is carried as a :class:`RecurrentSpikes` variable beside the membrane, and V's
    weight gradient comes from the presynaptic trace of ``S[t-1]`` like any spike-input layer's.
    The neuron options ``fused``, ``save_dtype`` and ``membrane_kept_every`` of ``nn.LIF`` do not apply: JAX differentiates
    the scan itself.
    """

    def __init__(
        self, features: int, *, binary: bool, compute_dtype: str | None = None, detach_scale: bool = False, rngs: nnx.Rngs, **neuron
    ):
        super().__init__(**neuron)
        self.recurrent = BinaryLinear(
            features,
            features,
            binary=binary,
            binarizable=True,
            use_bias=False,
            compute_dtype=compute_dtype,
            detach_scale=detach_scale,
            rngs=rngs,
        )
        self.previous = nnx.data(None)

    def __call__(self, x: jax.Array) -> jax.Array:
        """``[T, B, F]`` input current -> ``[T, B, F]`` spikes (online: ``[1, B, F]``, carrying S[t-1])."""
        if self.online:
            return self._online_step(x)
        spikes = self._scan(x)
        if self.recurrent.record:  # the recording view: V's input rate and MACs, for the SOP count
            self.recurrent(_previous_steps(spikes))
        return spikes

    def _scan(self, x: jax.Array) -> jax.Array:
        dtype = x.dtype if self.recurrent.compute_dtype is None else jnp.dtype(self.recurrent.compute_dtype)
        v = self.recurrent.weight(dtype)
        neuron = dict(
            tau=self.tau, v_th=self.v_th, reset=self.reset, detach_reset=self.detach_reset, surrogate=self.surrogate, beta=self.beta
        )

        def step(carry, x_t):
            u, s = carry
            u, s = ops.lif_step(u, x_t + (s.astype(dtype) @ v).astype(x.dtype), **neuron)
            return (u, s), s

        zeros = jnp.zeros(x.shape[1:], x.dtype)
        _, spikes = lax.scan(step, (zeros, zeros), x, unroll=self.unroll)
        return spikes

    def _online_step(self, x: jax.Array) -> jax.Array:
        # An adaptive trace travels stacked after the spikes ([2, B, F]), so S[t-1] has that shape too.
        rows = 2 if self.trace_kind == "adaptive" else 1
        previous = jnp.zeros((rows,) + x.shape[1:], x.dtype) if self.previous is None else self.previous[...]
        out = super().__call__(x + self.recurrent(previous))
        self.previous = RecurrentSpikes(lax.stop_gradient(out))
        return out


def _previous_steps(spikes: jax.Array) -> jax.Array:
    """``S[t-1]`` for t = 0..T-1, with ``S[-1] = 0``."""
    return jnp.concatenate([jnp.zeros_like(spikes[:1]), spikes[:-1]], axis=0)
