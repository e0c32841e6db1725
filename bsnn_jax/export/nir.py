"""NIR export: a trained bsnn_jax network as a graph of the Neuromorphic Intermediate Representation.

``to_nir(model)`` returns a ``nir.NIRGraph`` (``nir.write(path, graph)`` saves it as HDF5) that
snnTorch, Norse, Spyx, Lava, Rockpool, Sinabs and neuromorphic hardware read. NIR is
channel-first and unbatched: every shape is ``(C, H, W)`` of one sample at one time step.

Node by node (names are the model's module paths):

* ``normalize`` (only with ``normalization``): the dataset normalization ``(x * scale - mean) / std``
  as a 1x1 ``Conv2d`` with a diagonal kernel and a bias (NIR has no per-channel bias node; a
  ``Scale`` could not subtract the mean). The graph input is then the image as stored.
* every ``ConvUnit`` (conv + BatchNorm in evaluation mode): one ``Conv2d`` with BN folded in,
  ``weight = K * scale`` and ``bias = shift`` per output channel (``export.packed.fold_unit``).
  A binary conv's ``K`` is ``sign(w)``, so its NIR kernel holds exactly two values per output
  channel, ``+-g`` with ``g = gamma * BN_scale / sqrt(var + eps)`` (``gamma = mean|w|``, AGMM Eq. 5;
  1 for a BSO/T-BSO latent-free +-1 kernel).
* ``LIF`` (AGMM Eq. 1-4, ``u[t] = tau_b * u[t-1] + x[t]``, spike ``u >= v_th``, hard reset to 0)
  as ``nir.LIF`` (``tau dv/dt = (v_leak - v) + r I``, spike ``v > v_threshold``, ``v <- v_reset``),
  integrated by forward Euler with the step ``dt``: ``v[t] = v + dt/tau (v_leak - v + r I)``.
  With ``tau = dt / (1 - tau_b)``, ``r = tau / dt``, ``v_leak = 0`` that is
  ``v[t] = tau_b v[t-1] + I[t]`` exactly; ``v_reset = 0`` is the hard reset, and
  ``v_threshold`` is the largest float32 below ``v_th``, so NIR's strict ``v > v_threshold``
  is our ``u >= v_th`` for every float32 membrane. ``dt`` is what one time step means: 1 for
  an importer that integrates at dt=1 (our interpreter in the tests), ``1e-4`` for snnTorch,
  whose ``import_from_nir`` assumes dt = 1e-4 s. NIR's LIF has no subtractive reset, so a net
  with ``reset="soft"`` is refused.
* the 2x2 average pools as ``AvgPool2d``; the global average pool (VGG-11, ResNets) as an
  ``AvgPool2d`` over the whole map followed by ``Flatten``; the flatten head (VGGSNN,
  small_cnn) as ``Flatten`` (channel-first: the classifier's rows are reordered to match).
* the classifier as ``Affine``; its output, the logits of each time step, is the graph output
  (the prediction is the argmax of their mean over time, as in bsnn_jax).
* ``mlp`` (``SpikingMLP``): the graph input is one example flattened row-major in bsnn_jax's
  layout (``(F,)``, ``F = prod(input_shape)``); every ``DenseUnit`` (dense + BN folded) is an
  ``Affine`` (a binary one ``+-g`` per output unit), then ``LIF``; the normalization is a diagonal
  ``Affine``.
* a recurrent ``mlp`` layer (``nn.RecurrentLIF``, ``H[t] = tau U[t-1] + X[t] + V_b S[t-1]``) as the cycle
  snnTorch's importer reads as an ``RLeaky``: ``lifs.<i> -> lifs.<i>.recurrent -> lifs.<i>``, the
  ``recurrent`` node a ``nir.Linear`` (no bias) holding ``V_b`` in NIR's ``(out, in)`` layout: ``+-gamma``
  per output unit (row), ``gamma = mean|V|`` (AGMM Eq. 5) in the binary variants, the floats of V in
  ``fp``. NIR sums a node's inputs, and an edge that closes a cycle carries the value of the step
  before, so the LIF's input is ``W x[t] + V_b s[t-1]`` with ``s[-1] = 0``.
* ``conv1d`` (``SpikingVGG`` with ``dims=1``): the signal is ``(C, L)``, each ``Conv1dUnit`` a
  ``Conv1d``. NIR 1.0 has no 1-D pool (and its type inference miscounts a ``(3, 1)`` Conv2d), so
  the 2-wide average pool is a ``Conv1d`` of stride 2 whose kernel is ``1/2`` on the channel
  diagonal (0 elsewhere), and the global average pool one of ``1/L`` over the whole length, then
  ``Flatten``: exact for spike maps when L is a power of two, else within float32 rounding.
  The normalization is a diagonal width-1 ``Conv1d``.
* ResNet shortcuts: NIR sums the inputs of a node, so the residual stream after a block is the
  set of nodes whose outputs add up to it (the block's conv plus the stream before it, or its
  projection shortcut), and every node reading the stream has an edge from each of them
  (``nir.Identity`` would be the sum node, but nir 1.0 neither exports nor serializes it).

Not expressible, refused with ``NIRExportError``: AGMM (its per-sample gain
``sigmoid(alpha[t] * mean X[t])``, Eq. 11, has no NIR primitive), the soft reset, and ResNet-18's
max-pooling stem (NIR 1.0 has no max pool).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from bsnn_jax.data.base import Normalization
from bsnn_jax.export.packed import fold_unit
from bsnn_jax.models.common import Conv1dUnit, DenseUnit, NormalizedUnit
from bsnn_jax.models.mlp import SpikingMLP
from bsnn_jax.models.resnet import BiRealResNet
from bsnn_jax.models.vgg import SpikingVGG
from bsnn_jax.nn import LIF, RecurrentLIF


class NIRExportError(ValueError):
    """A model NIR cannot express (AGMM, soft reset, max pooling), or a NIR graph bsnn_jax cannot import."""


def require_nir():
    """The ``nir`` package (an optional extra), or an error saying how to install it."""
    try:
        import nir
    except ImportError as e:  # an optional extra
        raise NIRExportError(
            "NIR export/import needs the package nir: pip install 'bsnn_jax[nir]' (or pip install 'nir>=1.0.8,<1.1')"
        ) from e
    return nir


def lif_parameters(neuron: LIF, shape: tuple[int, ...], dt: float) -> dict[str, np.ndarray]:
    """``nir.LIF`` keyword arguments reproducing ``neuron`` (AGMM Eq. 1-4) under Euler at step ``dt``.

    ``tau = dt / (1 - tau_b)``, ``r = tau / dt``, ``v_leak = 0``, ``v_reset = 0``,
    ``v_threshold = nextafter(v_th, -inf)`` in float32 (module docstring).
    """
    _check_lif(neuron)
    tau = dt / (1.0 - float(neuron.tau))
    full = lambda v: np.full(shape, v, np.float32)
    return {
        "tau": full(tau),
        "r": full(tau / dt),
        "v_leak": full(0.0),
        "v_threshold": full(np.nextafter(np.float32(neuron.v_th), np.float32(-np.inf))),
        "v_reset": full(0.0),
    }


def _check_lif(neuron: LIF) -> None:
    if neuron.reset != "hard":
        raise NIRExportError(
            f"the net's LIF neurons use reset={neuron.reset!r}, but NIR's LIF only resets to v_reset (a hard reset); "
            "export a net trained with neuron reset='hard'"
        )
    if not 0 <= neuron.tau < 1:
        raise NIRExportError(f"LIF decay tau={neuron.tau} has no NIR time constant (it needs 0 <= tau < 1)")


def _check_expressible(model) -> None:
    """Refuses, before anything is computed, what NIR has no node for (module docstring)."""
    for path, m in nnx.iter_modules(model):
        name = ".".join(map(str, path))
        if isinstance(m, NormalizedUnit) and m.agmm is not None:
            raise NIRExportError(
                f"{name} is followed by AGMM, whose per-sample gain sigmoid(alpha[t] * mean X[t]) (AGMM Eq. 11) has no NIR "
                "primitive; export the vanilla BSNN or FP-SNN variant (train with --config.model.variant=bsnn or fp)"
            )
        if isinstance(m, LIF):
            _check_lif(m)
    known = ("stem", "blocks", "fc") if isinstance(model, BiRealResNet) else ("units", "lifs", "fc")
    extra = sorted(k for k, v in vars(model).items() if isinstance(v, nnx.Module | nnx.Variable) and k not in known)
    if extra:
        raise NIRExportError(
            f"{model.name} has parts the NIR export does not know: {extra} (it maps {list(known)}); "
            "export a model without them, or extend bsnn_jax.export.nir for them"
        )
    if isinstance(model, BiRealResNet) and model.stem.maxpool:
        raise NIRExportError(
            f"{model.name}'s stem max-pools, and NIR 1.0 has no max-pooling node; export a family without it (resnet19, vgg11, ...)"
        )


class _Builder:
    """Nodes and edges of a NIR graph in the making.

    ``last`` are the nodes whose outputs sum to the current signal (one, except in a residual
    stream), ``shape`` its (C, H, W) or (F,).
    """

    def __init__(self, nir, dt: float, input_shape: tuple[int, ...]):
        self.nir, self.dt = nir, dt
        self.nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array(input_shape)})}
        self.edges: list[tuple[str, str]] = []
        self.last, self.shape = ("input",), tuple(input_shape)

    def add(self, name: str, node, shape: tuple[int, ...]) -> str:
        self.nodes[name] = node
        self.edges += [(s, name) for s in self.last]
        self.last, self.shape = (name,), tuple(shape)
        return name

    def conv(self, name: str, weight: np.ndarray, bias: np.ndarray, stride: int, padding: int | tuple[int, int]) -> str:
        """``weight`` HWIO as bsnn_jax stores it; NIR's is OIHW. ``padding`` one int or ``(ph, pw)``."""
        c, h, w = self.shape
        pads = (padding, padding) if isinstance(padding, int) else tuple(padding)
        out_hw = tuple((n + 2 * p - k) // stride + 1 for n, p, k in zip((h, w), pads, weight.shape[:2], strict=True))
        node = self.nir.Conv2d(
            input_shape=(h, w),
            weight=np.ascontiguousarray(weight.transpose(3, 2, 0, 1), np.float32),
            stride=stride,
            padding=padding if isinstance(padding, int) else pads,
            dilation=1,
            groups=1,
            bias=np.asarray(bias, np.float32),
        )
        return self.add(name, node, (weight.shape[-1], *out_hw))

    def unit(self, name: str, unit: NormalizedUnit) -> str:
        """A unit with its BN folded: ``Affine`` (dense), ``Conv2d`` (2-D; 1-D as ``(3, 1)`` kernels)."""
        folded = fold_unit(unit)
        weight, shift = np.asarray(folded.weight()) * np.asarray(folded.scale[...]), np.asarray(folded.shift[...])
        if isinstance(unit, DenseUnit):
            return self.affine(name, weight, shift)
        if isinstance(unit, Conv1dUnit):
            return self.conv1d(name, weight, shift, 1, unit.conv.padding)
        return self.conv(name, weight, shift, unit.conv.strides, unit.conv.padding)

    def conv1d(self, name: str, weight: np.ndarray, bias: np.ndarray, stride: int, padding: int) -> str:
        """``weight`` WIO as bsnn_jax stores it; NIR's is OIW."""
        c, length = self.shape
        node = self.nir.Conv1d(
            input_shape=length,
            weight=np.ascontiguousarray(weight.transpose(2, 1, 0), np.float32),
            stride=stride,
            padding=padding,
            dilation=1,
            groups=1,
            bias=np.asarray(bias, np.float32),
        )
        return self.add(name, node, (weight.shape[-1], (length + 2 * padding - weight.shape[0]) // stride + 1))

    def avg_pool1d(self, name: str, window: int) -> str:
        """A ``window``-wide average pool as a ``Conv1d`` with a diagonal kernel (NIR 1.0 has no 1-D pool, and
        its Conv1d types ignore ``groups``, so a depthwise one would not read back from a file)."""
        c = self.shape[0]
        kernel = np.zeros((window, c, c), np.float32)
        kernel[:, np.arange(c), np.arange(c)] = 1.0 / window
        return self.conv1d(name, kernel, np.zeros(c, np.float32), window, 0)

    def lif(self, name: str, neuron: LIF) -> str:
        self.add(name, self.nir.LIF(**lif_parameters(neuron, self.shape, self.dt)), self.shape)
        if isinstance(neuron, RecurrentLIF):
            self.recurrence(name, neuron)
        return name

    def recurrence(self, name: str, neuron: RecurrentLIF) -> None:
        """The cycle ``name -> name.recurrent -> name``: V as a ``Linear`` (NIR's ``(out, in)`` layout) that
        reads the LIF's spikes and feeds them back, the one-step delay implied by the cycle (snnTorch's convention)."""
        v = np.asarray(neuron.recurrent.weight(jnp.float32))  # binarize(V) = sign(V) mean|V| per output unit, or V
        self.nodes[f"{name}.recurrent"] = self.nir.Linear(weight=np.ascontiguousarray(v.T, np.float32))
        self.edges += [(name, f"{name}.recurrent"), (f"{name}.recurrent", name)]

    def avg_pool(self, name: str, window: tuple[int, ...]) -> str:
        c, h, w = self.shape
        pair = lambda v: np.array(v, np.int64)
        node = self.nir.AvgPool2d(kernel_size=pair(window), stride=pair(window), padding=pair((0, 0)))
        return self.add(name, node, (c, h // window[0], w // window[1]))

    def flatten(self, name: str) -> str:
        node = self.nir.Flatten(input_type={"input": np.array(self.shape)}, start_dim=0, end_dim=-1)
        return self.add(name, node, (int(np.prod(self.shape)),))

    def affine(self, name: str, kernel: np.ndarray, bias: np.ndarray) -> str:
        node = self.nir.Affine(weight=np.ascontiguousarray(kernel.T, np.float32), bias=np.asarray(bias, np.float32))
        return self.add(name, node, (kernel.shape[1],))

    def graph(self):
        nir = self.nir
        self.nodes["output"] = nir.Output(output_type={"output": np.array(self.shape)})
        self.edges += [(s, "output") for s in self.last]
        return nir.NIRGraph(nodes=self.nodes, edges=self.edges)


def _normalize(b: _Builder, normalization: Normalization, input_shape: tuple[int, ...]) -> None:
    """The normalization as a 1x1 conv (an ``Affine`` for flat input): gain ``scale / std`` on the
    diagonal, bias ``-mean / std``; ``input_shape`` is the model's (channel last)."""
    std = np.asarray(normalization.std, np.float32)
    gain = np.float32(normalization.scale) / std
    if len(b.shape) == 1:  # mlp: one gain per feature of the flattened example
        full = lambda v: np.broadcast_to(v, input_shape).reshape(-1)  # noqa: E731
        bias = full(-np.asarray(normalization.mean, np.float32) / std)
        b.affine("normalize", np.diag(full(gain)).astype(np.float32), bias.astype(np.float32))
        return
    channels = b.shape[0]
    kernel = np.zeros((1, 1, channels, channels), np.float32)
    kernel[0, 0, np.arange(channels), np.arange(channels)] = np.broadcast_to(gain, (channels,))
    bias = np.broadcast_to(-np.asarray(normalization.mean, np.float32) / std, (channels,))
    if len(b.shape) == 2:  # a signal (C, L)
        b.conv1d("normalize", kernel[0], bias, 1, 0)
    else:
        b.conv("normalize", kernel, bias, 1, 0)


def _classifier(b: _Builder, fc, spatial: tuple[int, int, int] | None) -> None:
    """``fc`` on the flattened map; ``spatial = (H, W, C)`` reorders rows from our HWC flatten to NIR's CHW."""
    kernel = np.asarray(fc.weight(jnp.float32))
    if spatial is not None:
        h, w, c = spatial
        kernel = kernel.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1)
    bias = np.asarray(fc.bias[...]) if fc.bias is not None else np.zeros(kernel.shape[1], np.float32)
    b.affine("fc", kernel, bias)


def _vgg(b: _Builder, model: SpikingVGG) -> None:
    layer = 0
    for i, item in enumerate(model.cfg):
        if item == "A":
            b.avg_pool1d(f"pool{i}", 2) if model.dims == 1 else b.avg_pool(f"pool{i}", (2, 2))
            continue
        b.unit(f"units.{layer}", model.units[layer])
        b.lif(f"lifs.{layer}", model.lifs[layer])
        layer += 1
    c, h, w = b.shape if model.dims == 2 else (*b.shape, 1)
    if model.head == "gap":
        b.avg_pool1d("gap", h) if model.dims == 1 else b.avg_pool("gap", (h, w))
        b.flatten("flatten")
        _classifier(b, model.fc, None)
    else:
        b.flatten("flatten")
        _classifier(b, model.fc, (h, w, c))


def _mlp(b: _Builder, model: SpikingMLP) -> None:
    for i, (unit, lif) in enumerate(zip(model.units, model.lifs, strict=True)):
        b.unit(f"units.{i}", unit)
        b.lif(f"lifs.{i}", lif)
    _classifier(b, model.fc, None)


def _input_shape(model) -> tuple[int, ...]:
    """The graph's (channel-first) input shape: ``(C, H, W)``, ``(C, L)`` of a signal, ``(F,)`` for mlp."""
    if isinstance(model, SpikingMLP):
        return (int(np.prod(model.input_shape)),)
    if isinstance(model, SpikingVGG) and model.dims == 1:
        length, channels = model.signal
        return (channels, length)
    h, w, c = model.input_shape
    return (c, h, w)


def _resnet(b: _Builder, model: BiRealResNet) -> None:
    b.unit("stem.unit", model.stem.unit)
    for i, block in enumerate(model.blocks):
        stream, stream_shape = b.last, b.shape
        b.lif(f"blocks.{i}.lif", block.lif)
        conv = b.unit(f"blocks.{i}.unit", block.unit)
        shortcut = stream
        if block.shortcut is not None:
            b.last, b.shape = stream, stream_shape
            if block.shortcut.stride > 1:
                b.avg_pool(f"blocks.{i}.shortcut.pool", (block.shortcut.stride,) * 2)
            shortcut = (b.unit(f"blocks.{i}.shortcut.proj", block.shortcut.proj),)
        b.last = (conv, *shortcut)
    c, h, w = b.shape
    b.avg_pool("gap", (h, w))
    b.flatten("flatten")
    _classifier(b, model.fc, None)


def to_nir(model_or_restored, *, dt: float = 1.0, normalization: Normalization | None = None):
    """The ``nir.NIRGraph`` of a trained network in evaluation mode (module docstring for the mapping).

    Args:
      model_or_restored: a network of ``bsnn_jax.models`` of any family but resnet18's max-pool
        stem (FP-SNN or vanilla BSNN; BSO/T-BSO trained ones included), or ``train.restore(...)``'s result, whose dataset normalization
        is then included unless ``normalization`` is given.
      dt: the time step of one bsnn_jax step in the importer's units (1e-4 for snnTorch).
      normalization: prepend the dataset normalization as a 1x1 conv, so the graph takes the
        images as stored; without it the graph takes normalized input, like ``model``.

    Raises:
      NIRExportError: AGMM, soft reset or max pooling (no NIR primitive), or nir not installed.
    """
    nir = require_nir()
    model = model_or_restored
    if hasattr(model_or_restored, "dataset") and hasattr(model_or_restored, "model"):
        model = model_or_restored.model
        normalization = normalization or model_or_restored.dataset.normalization
    if not isinstance(model, SpikingVGG | BiRealResNet | SpikingMLP):
        raise NIRExportError(
            f"to_nir takes a network of bsnn_jax.models (SpikingVGG, BiRealResNet or SpikingMLP), got {type(model).__name__}"
        )
    if dt <= 0:
        raise NIRExportError(f"dt must be positive, got {dt}")
    _check_expressible(model)
    b = _Builder(nir, float(dt), _input_shape(model))
    if normalization is not None:
        _normalize(b, normalization, model.input_shape)
    build = _vgg if isinstance(model, SpikingVGG) else _mlp if isinstance(model, SpikingMLP) else _resnet
    build(b, model)
    return b.graph()


def export_nir_run(workdir, out, *, step: int | None = None, best: bool = False, dt: float = 1.0, force: bool = False) -> dict[str, Any]:
    """Writes ``to_nir`` of a checkpoint of the run in ``workdir`` (dataset normalization included) to ``out`` (HDF5).

    Returns ``{"path", "file_bytes", "step", "dt", "nodes": {type: count}, "input_shape", "output_shape"}``.
    """
    from pathlib import Path

    from bsnn_jax.train.restore import restore

    nir = require_nir()
    out = Path(out)
    if out.exists() and not force:
        raise NIRExportError(f"{out} already exists; choose another --out or pass --force to overwrite it")
    restored = restore(workdir, step=step, best=best)
    graph = to_nir(restored, dt=dt)
    nir.write(out, graph)
    kinds: dict[str, int] = {}
    for node in graph.nodes.values():
        kinds[type(node).__name__] = kinds.get(type(node).__name__, 0) + 1
    return {
        "path": str(out),
        "file_bytes": out.stat().st_size,
        "step": restored.step,
        "dt": dt,
        "nodes": kinds,
        "input_shape": [int(v) for v in graph.nodes["input"].input_type["input"]],
        "output_shape": [int(v) for v in graph.nodes["output"].output_type["output"]],
    }


__all__ = ["NIRExportError", "export_nir_run", "lif_parameters", "to_nir"]
