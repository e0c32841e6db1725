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
from bsnn_jax.models.common import ConvUnit
from bsnn_jax.models.resnet import BiRealResNet
from bsnn_jax.models.vgg import SpikingVGG
from bsnn_jax.nn import LIF


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
        if isinstance(m, ConvUnit) and m.agmm is not None:
            raise NIRExportError(
                f"{name} is followed by AGMM, whose per-sample gain sigmoid(alpha[t] * mean X[t]) (AGMM Eq. 11) has no NIR "
                "primitive; export the vanilla BSNN or FP-SNN variant (train with --config.model.variant=bsnn or fp)"
            )
        if isinstance(m, LIF):
            _check_lif(m)
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

    def conv(self, name: str, weight: np.ndarray, bias: np.ndarray, stride: int, padding: int) -> str:
        """``weight`` HWIO as bsnn_jax stores it; NIR's is OIHW."""
        c, h, w = self.shape
        k = weight.shape[0]
        out_hw = ((h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1)
        node = self.nir.Conv2d(
            input_shape=(h, w),
            weight=np.ascontiguousarray(weight.transpose(3, 2, 0, 1), np.float32),
            stride=stride,
            padding=padding,
            dilation=1,
            groups=1,
            bias=np.asarray(bias, np.float32),
        )
        return self.add(name, node, (weight.shape[-1], *out_hw))

    def unit(self, name: str, unit: ConvUnit) -> str:
        folded = fold_unit(unit)
        weight = np.asarray(folded.weight()) * np.asarray(folded.scale[...])
        return self.conv(name, weight, np.asarray(folded.shift[...]), unit.conv.strides, unit.conv.padding)

    def lif(self, name: str, neuron: LIF) -> str:
        return self.add(name, self.nir.LIF(**lif_parameters(neuron, self.shape, self.dt)), self.shape)

    def avg_pool(self, name: str, window: tuple[int, int]) -> str:
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


def _normalize(b: _Builder, normalization: Normalization) -> None:
    """The normalization as a 1x1 conv: gain ``scale / std`` on the diagonal, bias ``-mean / std``."""
    std = np.asarray(normalization.std, np.float32)
    gain = np.float32(normalization.scale) / std
    channels = b.shape[0]
    kernel = np.zeros((1, 1, channels, channels), np.float32)
    kernel[0, 0, np.arange(channels), np.arange(channels)] = np.broadcast_to(gain, (channels,))
    b.conv("normalize", kernel, np.broadcast_to(-np.asarray(normalization.mean, np.float32) / std, (channels,)), 1, 0)


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
            b.avg_pool(f"pool{i}", (2, 2))
            continue
        b.unit(f"units.{layer}", model.units[layer])
        b.lif(f"lifs.{layer}", model.lifs[layer])
        layer += 1
    c, h, w = b.shape
    if model.head == "gap":
        b.avg_pool("gap", (h, w))
        b.flatten("flatten")
        _classifier(b, model.fc, None)
    else:
        b.flatten("flatten")
        _classifier(b, model.fc, (h, w, c))


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
      model_or_restored: a network of ``bsnn_jax.models`` (FP-SNN or vanilla BSNN; BSO/T-BSO
        trained ones included), or ``train.restore(...)``'s result, whose dataset normalization
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
    if not isinstance(model, SpikingVGG | BiRealResNet):
        raise NIRExportError(f"to_nir takes a network of bsnn_jax.models (SpikingVGG or BiRealResNet), got {type(model).__name__}")
    if dt <= 0:
        raise NIRExportError(f"dt must be positive, got {dt}")
    _check_expressible(model)
    h, w, c = model.input_shape
    b = _Builder(nir, float(dt), (c, h, w))
    if normalization is not None:
        _normalize(b, normalization)
    (_vgg if isinstance(model, SpikingVGG) else _resnet)(b, model)
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
