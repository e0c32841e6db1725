"""NIR import: any graph of NIR's feed-forward nodes becomes a trainable bsnn_jax ``GraphNet``.

``from_nir(graph)`` reads Input, Output, Conv1d, Conv2d (any kernel, stride, padding incl.
``"same"``/``"valid"``, dilation, groups), Affine, Linear, SumPool2d, AvgPool2d (any kernel,
stride, padding), Flatten (of whole samples), Scale, Threshold, IF and LIF, connected in any
acyclic way: a node with several inputs sums them (NIR's rule), so residual nets (our ResNet
export) import as they are. Nodes run in topological order (``nir_graph.GraphNet``); shapes are
inferred from the Input node, so nodes without ``input_type`` (snnTorch writes ``input_shape=None``)
are fine. Nested graphs, other node types and other cycles are refused, naming the node.

One cycle is read, as snnTorch's importer reads it into an ``RLeaky``: a LIF/IF whose inputs include
an Affine/Linear that reads only that neuron and feeds only it (``lif -> rec -> lif``, our export of a
recurrent MLP layer). The edge closing the cycle carries the step before, so the neuron's input is
``I[t] = (its other inputs)[t] + W_rec s[t-1]``, ``s[-1] = 0``; it becomes an ``nn.RecurrentLIF``
(``GraphNeuron`` with a recurrent kernel, named after the LIF node: ``net.node("lifs.0").lif.recurrent``),
binary by the rule below (``+-g`` per row of ``W_rec``; its latent kernel holds ``+-g``, so
``binarize`` gives it back, but the latent-free view of BSO/T-BSO uses its sign only, as it does for
the ``mlp`` family's own V). The recurrent node must have no bias (NIR does not say whether a bias
enters before the first spike) and the layer must be flat, ``(F,)``.

Neurons, integrated by forward Euler at step ``dt`` (``tau dv/dt = v_leak - v + r I``, spike
``v > v_threshold``, reset to ``v_reset``)::

    v[t] = (1 - dt/tau) v[t-1] + (dt/tau) (r I[t] + v_leak)        (IF: v[t] = v[t-1] + dt r I[t])

is our LIF (AGMM Eq. 1-4, ``u[t] = tau_b u[t-1] + x[t]``) with ``tau_b = 1 - dt/tau`` and the
input map ``x = I * dt r / tau + dt v_leak / tau`` (``GraphNeuron``; skipped where it is 1 and 0
to float32 rounding, as in our exports). ``tau`` must be one value per layer (our LIF has one
decay); ``r`` and ``v_leak`` may differ per neuron; a per-neuron ``v_threshold`` is divided into
the input map (threshold 1), exact in real arithmetic; ``v_reset`` must be 0 (our hard reset).
``u >= v_th`` with ``v_th`` the next float32 above ``v_threshold`` is NIR's strict ``v > v_threshold``.

Binary layers: a Conv/Affine/Linear reading spikes whose kernel holds one magnitude ``g > 0`` per
output channel (``+-g``, as the export writes binary kernels; spikes pooled by a pool node or by a conv that only
averages each channel, as the 1-D export pools, count as spikes) becomes a binary ``GraphSynapse``
(``+-1`` kernel as ``BinaryParam`` and the gain ``g``), so BSO/T-BSO or the latent-weight
optimizers fine-tune it; ``variant="bsnn"`` binarizes every spike-reading layer except the readout
(``g = mean |w|``, AGMM Eq. 5: the start of binarizing an FP-SNN), ``variant="fp"`` none.

A leading 1x1 ``Conv2d`` (or width-1 ``Conv1d``) with a diagonal kernel (the export's ``normalize``
node) is returned as ``ImportedNIR.normalization`` and the model takes normalized input, as the
families do; an mlp's diagonal ``Affine`` normalization stays a layer of the model (raw input).

The model trains like the families: ``models.functional(imported.model)`` gives pure
``init``/``apply`` functions, and ``train.setup.assemble_optimizer(config, imported.model, ...)``
(then ``create_train_state``, ``make_step``) the optimizer of any config, BSO/T-BSO included.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

from bsnn_jax.data.base import Normalization
from bsnn_jax.export import nir_graph as g
from bsnn_jax.export.nir import NIRExportError, require_nir

ROUNDING = 1e-6  # a map within this of 1 (or offset of 0) is float32 rounding of an exported tau, r


@dataclasses.dataclass
class ImportedNIR:
    """``model``: the ``GraphNet`` (normalized input ``[T, B, *input_shape]`` or ``[B, *input_shape]``, channel-last);
    ``normalization``: the graph's leading normalization node as a ``data.Normalization``, or None."""

    model: g.GraphNet
    normalization: Normalization | None


@dataclasses.dataclass
class _Ctx:
    """What building one node needs: its NIR input shape, whether its input is spikes, dt, the variant."""

    shape: tuple[int, ...]
    spikes: bool
    dt: float
    variant: str | None
    readout: bool


def _recurrences(graph) -> dict[str, str]:
    """``{neuron: its recurrent node}``: every LIF/IF with an input from an Affine/Linear that reads only
    that neuron and feeds only it (the cycle snnTorch's importer reads as an ``RLeaky``)."""
    nir = require_nir()
    found = {}
    for a, b in graph.edges:
        synapse, neuron = graph.nodes.get(a), graph.nodes.get(b)
        if not isinstance(synapse, nir.Affine | nir.Linear) or not isinstance(neuron, nir.LIF | nir.IF):
            continue
        ins, outs = [x for x, y in graph.edges if y == a], [y for x, y in graph.edges if x == a]
        if ins == [b] and outs == [b]:
            found[b] = a
    return found


def _topology(graph, hidden) -> tuple[list[str], dict[str, list[str]], str, str]:
    """``(nodes in topological order, predecessors, input name, output name)`` or a clear error;
    the ``hidden`` nodes (recurrent synapses, part of their neuron) and their edges are left out."""
    nir = require_nir()
    names = {k: type(n).__name__ for k, n in graph.nodes.items()}
    for a, b in graph.edges:
        if a not in names or b not in names:
            raise NIRExportError(f"the NIR graph has an edge {a!r} -> {b!r} to a node it does not define")
    ends = [[k for k, n in graph.nodes.items() if isinstance(n, kind)] for kind in (nir.Input, nir.Output)]
    if any(len(e) != 1 for e in ends):
        raise NIRExportError(f"from_nir needs exactly one Input and one Output node, the graph has inputs {ends[0]}, outputs {ends[1]}")
    preds = {k: [a for a, b in graph.edges if b == k and a not in hidden] for k in graph.nodes if k not in hidden}
    order, done = [], set()
    while len(order) < len(preds):
        ready = [k for k in preds if k not in done and all(p in done for p in preds[k])]
        if not ready:
            cycle = sorted(k for k in preds if k not in done)[:4]
            raise NIRExportError(
                f"the NIR graph has a cycle through {cycle} (a recurrent connection); from_nir imports feed-forward graphs "
                "and one kind of cycle, a LIF/IF fed back by an Affine/Linear that reads only it and feeds only it"
            )
        order += ready
        done.update(ready)
    return order, preds, ends[0][0], ends[1][0]


def _uniform(value) -> float | None:
    """The one value every neuron shares, or None."""
    values = np.unique(np.asarray(value, np.float64))
    return float(values[0]) if values.size == 1 else None


def _per_neuron(name: str, field: str, value, shape: tuple[int, ...]) -> np.ndarray:
    """A NIR per-neuron array broadcast to the (channel-first) ``shape`` and moved to our channel-last layout."""
    try:
        full = np.broadcast_to(np.asarray(value, np.float64), shape)
    except ValueError:
        raise NIRExportError(f"{name}.{field} has shape {np.shape(value)}, which does not fit the node's input {shape}") from None
    return np.moveaxis(full, 0, -1) if full.ndim > 1 else full


def _neuron(name: str, node, ctx: _Ctx, *, leaky: bool, recurrent=None):
    """``GraphNeuron`` of a NIR LIF (``leaky``) or IF (module docstring's mapping); ``recurrent`` the
    ``(name, node)`` of its recurrent synapse, if it has one."""
    if node.v_reset is not None and np.any(np.asarray(node.v_reset) != 0):
        raise NIRExportError(f"{name}.v_reset is not 0; bsnn_jax's LIF resets to 0 (a hard reset), so it cannot run this node")
    arr = lambda field, value: _per_neuron(name, field, value, ctx.shape)  # noqa: E731
    if leaky:
        tau = _uniform(node.tau)
        if tau is None:
            raise NIRExportError(f"{name}.tau differs between neurons; bsnn_jax's LIF has one decay per layer (tau_b = 1 - dt / tau)")
        if not tau >= ctx.dt:
            raise NIRExportError(f"{name}.tau = {tau} is below the step dt = {ctx.dt}: 1 - dt/tau < 0; pass the graph's dt to from_nir")
        decay, gain, offset = 1.0 - ctx.dt / tau, arr("r", node.r) * (ctx.dt / tau), arr("v_leak", node.v_leak) * (ctx.dt / tau)
    else:
        decay, gain, offset = 1.0, arr("r", node.r) * ctx.dt, np.zeros(())
    threshold = arr("v_threshold", node.v_threshold)
    uniform = _uniform(threshold)
    if uniform is None:
        if np.any(threshold <= 0):
            raise NIRExportError(f"{name}.v_threshold differs between neurons and is not positive everywhere; bsnn_jax cannot rescale it")
        gain, offset, uniform = gain / threshold, offset / threshold, 1.0
    v_th = float(np.nextafter(np.float32(uniform), np.float32(np.inf)))

    def compact(a, neutral):  # None where the map does nothing, one number where every neuron shares it
        if np.allclose(a, neutral, rtol=0, atol=ROUNDING):
            return None
        shared = _uniform(a)
        return a if shared is None else shared

    lif = {"tau": decay, "v_th": v_th, "reset": "hard"}
    feedback = None if recurrent is None else _recurrent_kernel(*recurrent, ctx, gain)
    return g.GraphNeuron(lif, compact(gain, 1.0), compact(offset, 0.0), feedback), ctx.shape, True


def _recurrent_kernel(name: str, node, ctx: _Ctx, gain) -> tuple[np.ndarray, bool]:
    """The neuron's recurrent ``V`` channel-last (``[F_in, F_out]``) with its input gain folded into the
    columns (``(x + V s) * gain = x * gain + (V * gain) s``), and whether it is binary (module docstring)."""
    weight = np.asarray(node.weight, np.float64)
    n = ctx.shape[0]
    if len(ctx.shape) != 1 or weight.shape != (n, n):
        raise NIRExportError(
            f"{name}: a recurrent {type(node).__name__} of weight {weight.shape} feeds neurons of shape {ctx.shape}; "
            "from_nir imports recurrence of flat layers (F,) with an (F, F) weight"
        )
    bias = getattr(node, "bias", None)
    if bias is not None and np.any(np.asarray(bias) != 0):
        raise NIRExportError(
            f"{name}: the recurrent Affine has a nonzero bias, and NIR does not fix whether it enters at the first "
            "step (before any spike); write the bias into the neuron's feed-forward input and V as a Linear"
        )
    scaled = (weight * np.broadcast_to(gain, (n,))[:, None]).astype(np.float32)  # NIR rows are output units
    binary = _binary_gain(scaled, _Ctx((n,), True, ctx.dt, ctx.variant, False), 1) is not None
    return np.ascontiguousarray(scaled.T), binary


def _pairs(value, n: int) -> tuple[int, ...]:
    return tuple(int(v) for v in np.broadcast_to(np.asarray(value), (n,)))


def _padding(padding, kernel: tuple[int, ...], dilation: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """NIR/PyTorch padding as ``(lo, hi)`` per axis; ``"same"`` puts the odd pixel last, as PyTorch."""
    if isinstance(padding, str | bytes):
        padding = padding.decode() if isinstance(padding, bytes) else padding
        if padding == "valid":
            return tuple((0, 0) for _ in kernel)
        total = [d * (k - 1) for k, d in zip(kernel, dilation, strict=True)]
        return tuple((t // 2, t - t // 2) for t in total)
    return tuple((p, p) for p in _pairs(padding, len(kernel)))


def _binary_gain(weight: np.ndarray, ctx: _Ctx, groups: int) -> np.ndarray | None:
    """The per-output-channel magnitude if this layer is to be binary (module docstring), else None.
    Grouped convs (depthwise pooling) stay full precision."""
    if not ctx.spikes or ctx.variant == "fp" or weight[0].size < 2 or groups != 1:
        return None
    mags = np.abs(weight.reshape(len(weight), -1))
    if ctx.variant == "bsnn" and not ctx.readout:
        return mags.mean(axis=1)
    if np.all(mags == mags[:, :1]) and np.all(mags[:, 0] > 0):
        return mags[:, 0]
    return None


def _synapse(name: str, node, ctx: _Ctx, *, dims: int):
    """A ``GraphSynapse`` of a NIR Conv1d/Conv2d (``dims`` 1, 2) or Affine/Linear (0)."""
    weight = np.asarray(node.weight, np.float32)
    bias = getattr(node, "bias", None)
    gain = _binary_gain(weight, ctx, int(getattr(node, "groups", 1)))
    kernel = np.where(weight >= 0, 1.0, -1.0).astype(np.float32) if gain is not None else weight
    if dims == 0:
        if len(ctx.shape) != 1 or ctx.shape[0] != weight.shape[1]:
            raise NIRExportError(f"{name}: a {type(node).__name__} of {weight.shape[1]} inputs reads shape {ctx.shape}; flatten before it")
        return g.GraphSynapse(kernel.T, bias, gain=gain, spike_input=ctx.spikes), (weight.shape[0],), False
    if len(ctx.shape) != dims + 1 or ctx.shape[0] != weight.shape[1] * int(node.groups):
        raise NIRExportError(f"{name}: a Conv{dims}d of {weight.shape[1]}x{node.groups} input channels reads shape {ctx.shape}")
    ksize = weight.shape[2:]
    stride, dilation = _pairs(node.stride, dims), _pairs(node.dilation, dims)
    padding = _padding(node.padding, ksize, dilation)
    spatial = [
        (n + lo + hi - d * (k - 1) - 1) // s + 1
        for n, (lo, hi), d, k, s in zip(ctx.shape[1:], padding, dilation, ksize, stride, strict=True)
    ]
    if min(spatial) < 1:
        raise NIRExportError(f"{name}: kernel {ksize} with padding {padding} does not fit its input {ctx.shape}")
    module = g.GraphSynapse(
        np.moveaxis(kernel, (0, 1), (-1, -2)),  # OI... -> ...IO
        bias,
        gain=gain,
        dims=dims,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=int(node.groups),
        spike_input=ctx.spikes,
    )
    return module, (weight.shape[0], *spatial), ctx.spikes and _channel_average(weight, bias)


def _channel_average(weight: np.ndarray, bias) -> bool:
    """A conv that averages each channel on its own (the 1-D export's pools): its output is still spike-derived."""
    if weight.shape[0] != weight.shape[1] or np.any(weight < 0) or (bias is not None and np.any(np.asarray(bias) != 0)):
        return False
    eye = np.eye(weight.shape[0], dtype=bool).reshape(weight.shape[:2] + (1,) * (weight.ndim - 2))
    return not np.any(np.where(eye, 0, weight))


def _pool(name: str, node, ctx: _Ctx, *, average: bool):
    if len(ctx.shape) != 3:
        raise NIRExportError(f"{name}: a 2-D pool reads a (C, H, W) map, got shape {ctx.shape}")
    kernel, stride, padding = (_pairs(v, 2) for v in (node.kernel_size, node.stride, node.padding))
    spatial = [(n + 2 * p - k) // s + 1 for n, k, s, p in zip(ctx.shape[1:], kernel, stride, padding, strict=True)]
    return g.Pool(kernel, stride, padding, average=average), (ctx.shape[0], *spatial), ctx.spikes


def _flatten(name: str, node, ctx: _Ctx):
    n = len(ctx.shape)
    start, end = node.start_dim % n, node.end_dim % n
    if n > 1 and (start, end) != (0, n - 1):
        raise NIRExportError(
            f"{name}: Flatten start_dim={node.start_dim}, end_dim={node.end_dim} of shape {ctx.shape} keeps axes apart; "
            "from_nir flattens whole samples (start_dim=0, end_dim=-1: NIR shapes have no batch axis)"
        )
    return g.Flatten(), (math.prod(ctx.shape),), ctx.spikes


def _builders(nir) -> dict[type, Callable]:
    return {
        nir.Conv2d: lambda k, n, c: _synapse(k, n, c, dims=2),
        nir.Conv1d: lambda k, n, c: _synapse(k, n, c, dims=1),
        nir.Affine: lambda k, n, c: _synapse(k, n, c, dims=0),
        nir.Linear: lambda k, n, c: _synapse(k, n, c, dims=0),
        nir.LIF: lambda k, n, c: _neuron(k, n, c, leaky=True),
        nir.IF: lambda k, n, c: _neuron(k, n, c, leaky=False),
        nir.AvgPool2d: lambda k, n, c: _pool(k, n, c, average=True),
        nir.SumPool2d: lambda k, n, c: _pool(k, n, c, average=False),
        nir.Flatten: _flatten,
        nir.Scale: lambda k, n, c: (g.Scale(_per_neuron(k, "scale", n.scale, c.shape)), c.shape, False),
        nir.Threshold: lambda k, n, c: (g.Threshold(_per_neuron(k, "threshold", n.threshold, c.shape)), c.shape, True),
    }


def _normalization(graph, preds, succ, source: str) -> tuple[str | None, Normalization | None]:
    """The leading diagonal 1x1 conv (the export's normalization node), if the graph starts with one."""
    nir = require_nir()
    nexts = succ[source]
    node = graph.nodes[nexts[0]] if len(nexts) == 1 else None
    if not isinstance(node, nir.Conv2d | nir.Conv1d) or preds[nexts[0]] != [source]:
        return None, None
    dims = node.weight.ndim - 2
    ones = (1,) * dims
    if node.weight.shape[2:] != ones or _pairs(node.stride, dims) != ones or node.groups != 1:
        return None, None
    if _padding(node.padding, ones, ones) != ((0, 0),) * dims:
        return None, None
    w = np.asarray(node.weight.reshape(node.weight.shape[:2]), np.float64)
    gain = np.diagonal(w)
    if w.shape[0] != w.shape[1] or not np.array_equal(np.diag(gain), w) or np.any(gain == 0):
        return None, None
    bias = np.asarray(node.bias, np.float64)
    return nexts[0], Normalization(1.0, tuple((-bias / gain).tolist()), tuple((1.0 / gain).tolist()))


def _readouts(graph, preds, output: str) -> set[str]:
    """The layers whose output reaches Output without passing a neuron (kept full precision by ``variant="bsnn"``)."""
    nir = require_nir()
    found, stack = set(), list(preds[output])
    while stack:
        k = stack.pop()
        node = graph.nodes[k]
        if k in found or isinstance(node, nir.LIF | nir.IF | nir.Threshold | nir.Input):
            continue
        found.add(k)
        stack += preds[k]
    return found


def _our_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (*shape[1:], shape[0]) if len(shape) > 1 else shape


def from_nir(graph, *, timesteps: int = 4, dt: float = 1.0, variant: str | None = None, name: str = "nir") -> ImportedNIR:
    """A ``GraphNet`` computing ``graph`` (module docstring), run for ``timesteps`` steps.

    Args:
      graph: a ``nir.NIRGraph`` (``nir.read(path)``).
      timesteps: T of the model (NIR graphs have none).
      dt: the Euler step the graph's time constants assume (1e-4 for snnTorch's files, 1 for ours at dt=1).
      variant: None (binary layers where the kernels are +-g), ``"bsnn"`` (binarize every
        spike-reading layer but the readout) or ``"fp"`` (keep every kernel as it is).

    Raises:
      NIRExportError: a node type, field value or connection bsnn_jax cannot run, naming it.
    """
    nir = require_nir()
    if variant not in (None, "fp", "bsnn"):
        raise NIRExportError(f"variant must be None, 'fp' or 'bsnn' (AGMM has no NIR form), got {variant!r}")
    if dt <= 0 or timesteps < 1:
        raise NIRExportError(f"dt must be positive and timesteps >= 1, got dt={dt}, timesteps={timesteps}")
    recurrences = _recurrences(graph)
    order, preds, source, output = _topology(graph, set(recurrences.values()))
    succ = {k: [b for a, b in graph.edges if a == k] for k in graph.nodes}
    skipped, norm = _normalization(graph, preds, succ, source)
    shape = tuple(int(v) for v in np.asarray(graph.nodes[source].input_type["input"]).reshape(-1))
    readouts, builders = _readouts(graph, preds, output), _builders(nir)
    index, shapes, spikes = {source: -1}, {source: shape}, {source: False}
    if skipped:
        index[skipped], shapes[skipped], spikes[skipped] = -1, shape, False
    modules, sources, names = [], [], []
    for key in order:
        node = graph.nodes[key]
        if key in index or isinstance(node, nir.Output):
            continue
        build = builders.get(type(node))
        if build is None:
            raise NIRExportError(
                f"{key}: NIR node {type(node).__name__} has no bsnn_jax layer; from_nir reads "
                f"{sorted(t.__name__ for t in builders)}, Input and Output"
            )
        in_shapes = {shapes[p] for p in preds[key]}
        if len(in_shapes) != 1:
            raise NIRExportError(f"{key} sums inputs of different shapes {sorted(in_shapes)} (or has no input)")
        ctx = _Ctx(in_shapes.pop(), all(spikes[p] for p in preds[key]), float(dt), variant, key in readouts)
        if key in recurrences:
            feedback = (recurrences[key], graph.nodes[recurrences[key]])
            module, shapes[key], spikes[key] = _neuron(key, node, ctx, leaky=isinstance(node, nir.LIF), recurrent=feedback)
        else:
            module, shapes[key], spikes[key] = build(key, node, ctx)
        index[key] = len(modules)
        modules.append(module)
        sources.append([index[p] for p in preds[key]])
        names.append(key)
    binary = any(getattr(m, "binary", False) for m in modules)
    model = g.GraphNet(
        modules,
        sources,
        [index[p] for p in preds[output]],
        names,
        input_shape=_our_shape(shape),
        timesteps=timesteps,
        variant="bsnn" if binary else "fp",
        name=name,
    )
    model.eval()
    return ImportedNIR(model, norm)
