"""Layer modes as views: one mechanism, Flax NNX's ``nnx.view``, for every mode a layer has.

A mode is a static attribute of some layers (``latent_free``, ``online``, ``record``); each layer
declares the modes it has in its ``set_view`` method, and these functions return a view of the
model with a mode set. A view shares the model's arrays but not its static attributes, so the
model the user holds (and any graph definition a jitted step has captured) keeps its modes.
"""

from __future__ import annotations

import jax
from flax import nnx

from bsnn_jax.nn.layers import BinaryParam
from bsnn_jax.ops import TRACES, sign_ste


def latent_free(model: nnx.Module) -> nnx.Module:
    """A copy of ``model`` for latent-weight-free training by a flip rule (Bop, BSO, T-BSO).

    Every binary kernel becomes ``sign(w)`` in {-1, +1} (``sign(0) = +1``) and every binary layer
    uses its kernel as stored: the forward pass is unchanged (``binarize`` of a +-1 kernel is
    itself, its per-channel scale being 1), and the kernel's gradient is the plain ``G = dL/dW``
    of BSO Eq. 11, not the straight-through, scale-corrected gradient of a latent weight (AGMM
    Eq. 5). This is the BSO code's ``QuantConv2d``: a conv of +-1 weights, no scale, BatchNorm
    after it. ``model`` itself is left as it is (the copy has Variables of its own).
    """
    copy = nnx.view(nnx.clone(model), latent_free=True, raise_if_not_found=False)
    nnx.update(copy, jax.tree.map(sign_ste, nnx.state(copy, BinaryParam)))
    return copy


def online(model: nnx.Module, *, t, trace_decay: float | None = None, trace: str | None = None) -> nnx.Module:
    """A view of ``model`` that runs one time step per call, as time step ``t`` (BSO, OTTT).

    Args:
      t: the time step the next call computes (int, or traced int32 scalar); picks AGMM's alpha[t].
      trace_decay: lambda of the presynaptic trace ``a_hat[t] = lambda a_hat[t-1] + s[t]``; the LIF
        leak (tau = 0.5 for AGMM's neuron, 1 - 1/tau_m = 0.5 for BSO's) makes it track the membrane.
        ``None`` keeps the layers' own (0.5).
      trace: ``"constant"`` (OTTT: ``lambda = trace_decay``) or ``"adaptive"`` (the BSO code: a
        per-neuron decay clamped to ``[-trace_decay, trace_decay]``, ``ops.adaptive_decay``;
        needs the model's neurons to be ``nn.TracingLIF``). ``None`` keeps the layers' own.
    """
    if trace is not None and trace not in TRACES:
        raise ValueError(f"unknown trace {trace!r}; known: {', '.join(TRACES)}")
    return nnx.view(model, online=True, t=t, trace_decay=trace_decay, trace=trace, raise_if_not_found=False)


def recording(model: nnx.Module) -> nnx.Module:
    """A view of ``model`` whose weight layers sow their mean input and MACs (under ``nnx.capture``)."""
    return nnx.view(model, record=True, raise_if_not_found=False)
