"""Online mode: a network run one time step at a time, its state carried between calls (BSO, OTTT).

Online, every call of the model sees one time step (``[1, B, ...]`` frames, or the static image
again). LIF layers continue from the membrane they kept as a ``Membrane`` variable, spike-input
synaptic layers keep a presynaptic ``Trace`` and take their weight gradient from it, AGMM uses
alpha[t], and BatchNorm, seeing one step, normalises with that step's batch statistics. The
carried state is ordinary NNX state, ``nnx.state(model, OnlineState)``: a training step takes it
in and returns it, so nothing is hidden and nothing differentiates through time.
"""

from __future__ import annotations

from flax import nnx

from bsnn_jax.nn.layers import AGMM, LIF, Membrane, SynapticLayer, Trace

OnlineState = (Membrane, Trace)


def set_online(model: nnx.Module, online: bool, *, t=None, trace_decay: float = 0.5) -> None:
    """Switches ``model`` (in place) in or out of online mode at time step ``t``.

    Args:
      online: one time step per call (True) or whole sequences (False).
      t: the time step the next call computes (int, or traced int32 scalar); picks AGMM's alpha[t].
      trace_decay: lambda of the presynaptic trace ``a_hat[t] = lambda a_hat[t-1] + s[t]``; the LIF
        leak (tau = 0.5 for AGMM's neuron, 1 - 1/tau_m = 0.5 for BSO's) makes it track the membrane.
    """
    if online and t is None:
        raise ValueError("online mode needs the time step t of the next call")
    for _, module in nnx.iter_graph(model):
        if isinstance(module, AGMM):
            module.time_index = t if online else None
        elif hasattr(module, "online"):
            module.online = online
            if isinstance(module, SynapticLayer):
                module.trace_decay = trace_decay


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
        kind = Membrane if isinstance(module, LIF) else Trace
        setattr(module, path[-1], kind(value.get_value() if isinstance(value, nnx.Variable) else value))


def reset_online_state(model: nnx.Module) -> None:
    """Forgets every carried membrane and trace: the next online call starts a new sample (t = 0)."""
    for _, module in nnx.iter_graph(model):
        if isinstance(module, LIF):
            module.membrane = None
        elif isinstance(module, SynapticLayer):
            module.trace = None
