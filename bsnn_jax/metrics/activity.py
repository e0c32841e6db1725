"""Firing rates and operation counts measured on data (AGMM Fig. 8 and Table 2)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import jax
import numpy as np
from flax import nnx

from bsnn_jax.nn import LIF, SynapticLayer


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


def _recording_copy(model: nnx.Module) -> nnx.Module:
    # A second graph over the same arrays: turning recording on there leaves the user's model
    # (and any graphdef a jitted train step holds) untouched.
    copy = nnx.merge(*nnx.split(model))
    for _, module in nnx.iter_graph(copy):
        if isinstance(module, (LIF, SynapticLayer)):
            module.record = True
    return copy


def _flat(state) -> dict[str, jax.Array]:
    out = {}
    for path, value in nnx.to_flat_state(state):
        values = value.get_value() if isinstance(value, nnx.Variable) else value
        out[".".join(map(str, path))] = values[0] if isinstance(values, tuple) else values
    return out


def activity_fn(model: nnx.Module):
    """A jitted ``f(x) -> (logits, recorded)`` that runs ``model`` in evaluation mode and records
    every LIF's firing rate and every weight layer's mean input and MACs.

    The model's current parameters are read at each call, so one function serves a whole
    training run.
    """
    copy = _recording_copy(model)
    copy.eval()
    graphdef, _ = nnx.split(copy)

    @jax.jit
    def run(state, x):
        logits, recorded = nnx.capture(lambda m, v: m(v), nnx.Intermediate)(nnx.merge(graphdef, state), x)
        return logits, _flat(recorded)

    return lambda x: run(nnx.state(model), x)


def measure_activity(model: nnx.Module, batches: Iterable[jax.Array]) -> Activity:
    """Firing rates and operation counts averaged over ``batches`` (weighted by batch size)."""
    run = activity_fn(model)
    sums: dict[str, float] = {}
    seen = 0
    for x in batches:
        _, recorded = run(x)
        n = x.shape[-4]
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
            path: Synapse(mean[f"{path}.input_rate"], mean[f"{path}.macs_per_step"], layer.spike_input)
            for path, layer in layers.items()
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
