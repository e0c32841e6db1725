"""Spike collection from any model, without hooks in the layers: ``nnx.capture`` records the
output of every ``nn.LIF`` call, and the helpers here reduce them to firing rates.

A firing rate is the mean of the spikes over (T, B, H, W, C) of one LIF layer (Q-SNN appends
``out.mean()`` per LIF; methods-spec 1.6).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from bsnn_jax.nn import LIF


class SpikeOutput(nnx.Intermediate):
    """Variable type of captured method outputs (only the LIF ones are kept)."""


def lif_paths(model: nnx.Module) -> list[tuple[Any, ...]]:
    """Paths of the ``nn.LIF`` submodules of ``model``, in the order ``nnx.iter_modules`` visits them."""
    return [tuple(path) for path, module in nnx.iter_modules(model) if isinstance(module, LIF)]


def _name(path: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in path)


def run_with_spikes(model: nnx.Module, x: jax.Array, **kwargs) -> tuple[Any, dict[str, jax.Array]]:
    """Runs ``model(x)`` and also returns the spike tensor of every LIF layer.

    Returns:
      ``(output, spikes)`` with ``spikes`` an ordered ``{layer path: [T, B, ...] spikes}``; a LIF
      module called several times contributes the concatenation of its calls along axis 0.
    """
    paths = lif_paths(model)
    out, captured = nnx.capture(model, SpikeOutput, method_outputs=SpikeOutput)(x, **kwargs)
    flat = {tuple(p): v for p, v in nnx.to_flat_state(captured)}
    spikes = {}
    for path in paths:
        var = flat.get(path + ("__call__",))
        if var is None:  # a LIF the forward never called
            continue
        calls = var.get_value()
        spikes[_name(path)] = calls[0] if len(calls) == 1 else jnp.concatenate(calls, axis=0)
    return out, spikes


def firing_rates(model: nnx.Module, x: jax.Array, **kwargs) -> tuple[Any, dict[str, jax.Array]]:
    """Runs ``model(x)``; returns ``(output, {LIF layer path: mean spike rate})`` in network order."""
    out, spikes = run_with_spikes(model, x, **kwargs)
    return out, {k: jnp.mean(v.astype(jnp.float32)) for k, v in spikes.items()}
