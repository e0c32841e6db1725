"""Spikes, firing rates and operation counts measured on data (AGMM Fig. 8 and Table 2).

``nnx.capture`` records the output of every ``nn.LIF`` call, so spiking layers need no hooks;
weight layers sow their mean input and MACs in a recording view (``nn.recording``).
A firing rate is the mean of one LIF layer's spikes over (T, B, H, W, C) (Q-SNN appends
``out.mean()`` per LIF; methods-spec 1.6).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from bsnn_jax.nn import LIF, SynapticLayer, recording
from bsnn_jax.ops import compiler


class SpikeOutput(nnx.Intermediate):
    """Variable type of captured method outputs (only the LIF ones are kept)."""


def _name(path) -> str:
    return ".".join(str(p) for p in path)


def _run_captured(model: nnx.Module, x: jax.Array, **kwargs):
    """``model(x)`` with every LIF's spikes and everything sown, ``(out, spikes, sown)``."""
    out, outputs, sown = nnx.capture(model, SpikeOutput, nnx.Intermediate, method_outputs=SpikeOutput)(x, **kwargs)
    flat = {tuple(p): v for p, v in nnx.to_flat_state(outputs)}
    spikes = {}
    for path, module in nnx.iter_modules(model):
        var = flat.get(tuple(path) + ("__call__",))
        if isinstance(module, LIF) and var is not None:  # a LIF the forward never called has no entry
            calls = var.get_value()
            spikes[_name(path)] = calls[0] if len(calls) == 1 else jnp.concatenate(calls, axis=0)
    return out, spikes, {_name(p): v.get_value()[0] for p, v in nnx.to_flat_state(sown)}


def run_with_spikes(model: nnx.Module, x: jax.Array, **kwargs) -> tuple[Any, dict[str, jax.Array]]:
    """Runs ``model(x)`` and also returns the spike tensor of every LIF layer.

    Returns:
      ``(output, spikes)`` with ``spikes`` an ordered ``{layer path: [T, B, ...] spikes}``; a LIF
      module called several times contributes the concatenation of its calls along axis 0.
      The spikes are differentiable (surrogate gradients), for firing-rate regularisers.
    """
    out, spikes, _ = _run_captured(model, x, **kwargs)
    return out, spikes


def firing_rates(model: nnx.Module, x: jax.Array, **kwargs) -> tuple[Any, dict[str, jax.Array]]:
    """Runs ``model(x)``; returns ``(output, {LIF layer path: mean spike rate})`` in network order."""
    out, spikes = run_with_spikes(model, x, **kwargs)
    return out, {k: jnp.mean(v.astype(jnp.float32)) for k, v in spikes.items()}


@dataclasses.dataclass(frozen=True)
class Synapse:
    """One weight layer: mean input, MACs per sample and time step, and whether it reads spikes."""

    input_rate: float
    macs_per_step: float
    spike_input: bool


@dataclasses.dataclass(frozen=True)
class Activity:
    """What a forward pass did, averaged over the samples it saw."""

    firing_rates: dict[str, float]
    synapses: dict[str, Synapse]
    timesteps: int

    @property
    def mean_firing_rate(self) -> float:
        """Mean of the per-layer firing rates (every LIF layer weighs the same)."""
        return float(np.mean(list(self.firing_rates.values()))) if self.firing_rates else float("nan")


def activity_fn(model: nnx.Module):
    """A jitted ``f(x) -> (logits, recorded)`` that runs ``model`` in evaluation mode and records
    every LIF's firing rate (``"<path>.spike_rate"``) and every weight layer's mean input and MACs.

    The model's current parameters are read at each call, so one function serves a whole
    training run.
    """
    copy = recording(model)  # a view: the user's model (and a train step's graphdef) keep their modes
    copy.eval()
    graphdef, _ = nnx.split(copy)

    @compiler.jit
    def run(state, x):
        logits, spikes, sown = _run_captured(nnx.merge(graphdef, state), x)
        rates = {f"{k}.spike_rate": jnp.mean(v.astype(jnp.float32)) for k, v in spikes.items()}
        return logits, {**sown, **rates}

    return lambda x: run(nnx.state(model), x)


def measure_activity(model: nnx.Module, batches: Iterable[jax.Array]) -> Activity:
    """Firing rates and operation counts averaged over ``batches`` (weighted by batch size)."""
    run = activity_fn(model)
    sums: dict[str, float] = {}
    seen = 0
    for x in batches:
        _, recorded = run(x)
        n = x.shape[-len(model.input_shape) - 1]  # the batch axis, before one example's axes
        for k, v in recorded.items():
            sums[k] = sums.get(k, 0.0) + float(v) * n
        seen += n
    if not seen:
        raise ValueError("measure_activity got no batches")
    mean = {k: v / seen for k, v in sums.items()}
    layers = {".".join(map(str, p)): m for p, m in nnx.iter_graph(model) if isinstance(m, SynapticLayer)}
    return Activity(
        firing_rates={k.removesuffix(".spike_rate"): v for k, v in mean.items() if k.endswith(".spike_rate")},
        synapses={
            path: Synapse(mean[f"{path}.input_rate"], mean[f"{path}.macs_per_step"], layer.spike_input) for path, layer in layers.items()
        },
        timesteps=int(model.timesteps),
    )


@dataclasses.dataclass(frozen=True)
class OperationCounts:
    """Operations per inference (one sample, all T steps)."""

    sops: float
    macs: float


def operation_counts(activity: Activity) -> OperationCounts:
    """AGMM Table 2 / Yao et al. 2024: SOPs = sum over spike-input layers of fr_in * FLOPs * T;
    MACs = sum over real-input layers of FLOPs * T.

    FLOPs are a layer's multiply-accumulates per sample and time step. A static image feeds the
    first conv the same current at every step; counted T times, as the papers count it, although
    this library computes it once.
    """
    t = activity.timesteps
    sops = sum(s.input_rate * s.macs_per_step * t for s in activity.synapses.values() if s.spike_input)
    macs = sum(s.macs_per_step * t for s in activity.synapses.values() if not s.spike_input)
    return OperationCounts(sops=sops, macs=macs)


# (stem, shortcuts, classifier) multipliers: "T" counts a layer at every time step, 1 once, 0 not.
MAC_CONVENTIONS: dict[str, tuple] = {
    "every real-input layer x T (ours, Yao et al. 2024)": ("T", "T", "T"),
    "stem encoded once, the rest x T (what this library computes)": (1, "T", "T"),
    "one time step (everything once)": (1, 1, 1),
    "stem x T, shortcuts and classifier once": ("T", 1, 1),
    "without shortcuts (stem and classifier x T)": ("T", 0, "T"),
    "stem x T only": ("T", 0, 0),
    "stem once only": (1, 0, 0),
    "shortcuts and classifier x T, no stem": (0, "T", "T"),
}


def real_input_role(path: str) -> str:
    """``"shortcut"``, ``"classifier"`` or ``"stem"`` (any other real-input layer) for a layer path."""
    if "shortcut" in path:
        return "shortcut"
    return "classifier" if path == "fc" or path.endswith(".fc") else "stem"


def mac_conventions(activity: Activity) -> dict[str, float]:
    """MACs per inference under every counting convention of :data:`MAC_CONVENTIONS`.

    AGMM Table 2 reports 0.027 G MACs for ResNet-19 (CIFAR-100, T=2) as FP-SNN and vanilla BSNN
    and 0.028 G with AGMM; this library counts 0.0407 G (:func:`operation_counts`: the 3x3 stem,
    the two full-precision 1x1 shortcuts and the classifier, each x T). None of these conventions
    gives 0.027 G (the nearest are 0.0239 and 0.0336; the README's "Reproducing the papers"), so
    the first stays the one :func:`operation_counts` uses.
    """
    t = activity.timesteps
    per_role = {"stem": 0.0, "shortcut": 0.0, "classifier": 0.0}
    for path, s in activity.synapses.items():
        if not s.spike_input:
            per_role[real_input_role(path)] += s.macs_per_step
    factor = lambda m: t if m == "T" else m  # noqa: E731
    return {
        name: sum(factor(m) * per_role[role] for m, role in zip(mults, ("stem", "shortcut", "classifier"), strict=True))
        for name, mults in MAC_CONVENTIONS.items()
    }
