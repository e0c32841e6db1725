"""Online mode: a network run one time step at a time, its state carried between calls (BSO, OTTT).

Online (a view made by ``nn.online``), every call of the model sees one time step (``[1, B, ...]``
frames, or the static image again). LIF layers continue from the membrane they kept as a
``Membrane`` variable, spike-input synaptic layers keep a presynaptic ``Trace`` and take their
weight gradient from it, AGMM uses alpha[t], a recurrent layer keeps its last spikes
(``RecurrentSpikes``), and BatchNorm, seeing one step, normalises with that step's batch statistics. The
carried state is ordinary NNX state, ``nnx.state(model, OnlineState)``: a training step takes it
in and returns it, so nothing is hidden and nothing differentiates through time.
"""

from __future__ import annotations

from flax import nnx

from bsnn_jax.nn.layers import LIF, Membrane, SynapticLayer, Trace
from bsnn_jax.nn.recurrent import RecurrentLIF, RecurrentSpikes
from bsnn_jax.nn.trace import TraceDrive, TracingLIF

OnlineState = (Membrane, Trace, TraceDrive, RecurrentSpikes)
_KINDS = {"membrane": Membrane, "drive": TraceDrive, "previous": RecurrentSpikes}  # every other carried attribute is a trace


def submodule(model: nnx.Module, path: tuple) -> nnx.Module:
    """The module at ``path`` (attribute names and list indices, as NNX state paths give them)."""
    for key in path:
        model = model[key] if isinstance(key, int) else getattr(model, key)
    return model


def load_online_state(model: nnx.Module, state) -> None:
    """Puts carried membranes and traces (``nnx.state(other, OnlineState)``, pure or not) back
    into ``model`` (in place), e.g. into a model freshly merged inside the next step's gradient."""
    for path, value in nnx.to_flat_state(state):
        module = submodule(model, path[:-1])
        kind = _KINDS.get(path[-1], Trace)
        setattr(module, path[-1], kind(value.get_value() if isinstance(value, nnx.Variable) else value))


def reset_online_state(model: nnx.Module) -> None:
    """Forgets every carried membrane and trace: the next online call starts a new sample (t = 0)."""
    for _, module in nnx.iter_graph(model):
        if isinstance(module, RecurrentLIF):
            module.previous = None
        if isinstance(module, TracingLIF):
            module.trace = module.drive = None
        if isinstance(module, LIF):
            module.membrane = None
        elif isinstance(module, SynapticLayer):
            module.trace = None
