"""The BSO code's adaptive presynaptic trace, kept where the decay is known: at the neuron."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from bsnn_jax import ops
from bsnn_jax.nn.layers import LIF, Trace


class TraceDrive(nnx.Variable):
    """``n[t] = v[t] - V_th s[t]`` of the last online step: the denominator of the next decay."""


class TracingLIF(LIF):
    """``nn.LIF`` that, online with ``trace="adaptive"``, also sends its spikes' presynaptic trace.

    The trace is ``a_hat[t] = P[t] a_hat[t-1] + s[t]`` with the BSO code's per-neuron decay
    ``P[t] = clamp(n[t] / n[t-1], -lambda, lambda)`` (``ops.adaptive_decay``), which needs the
    membrane, so the neuron keeps it (``OnlineLIFNode.rate_tracking``). The output is
    ``[spikes; a_hat]`` stacked on the time axis (``[2, B, ...]`` for one online step), the
    code's ``output_type="spike_rate"``; the next synaptic layer splits it
    (``SynapticLayer._online_trace``). In every other mode it is exactly ``nn.LIF``.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.trace_kind, self.trace_decay = "constant", 0.5
        self.trace, self.drive = nnx.data(None), nnx.data(None)

    def set_view(self, online: bool | None = None, trace: str | None = None, trace_decay: float | None = None):
        """Online mode and trace kind (``nn.online``); ``None`` keeps a mode as it is."""
        super().set_view(online=online)
        if trace is not None:
            self.trace_kind = trace
        if trace_decay is not None:
            self.trace_decay = trace_decay

    def __call__(self, x: jax.Array) -> jax.Array:
        spikes = super().__call__(x)
        if not (self.online and self.trace_kind == "adaptive"):
            return spikes
        s = jax.lax.stop_gradient(spikes[-1])
        drive = jax.lax.stop_gradient(self.membrane[...]) - self.v_th * s
        previous_drive = jnp.zeros_like(drive) if self.drive is None else self.drive[...]
        decay = ops.adaptive_decay(drive, previous_drive, self.trace_decay)
        trace = ops.presynaptic_trace(None if self.trace is None else self.trace[...], s, decay)
        self.trace, self.drive = Trace(trace), TraceDrive(drive)
        return jnp.concatenate([spikes, trace[None].astype(spikes.dtype)], axis=0)
