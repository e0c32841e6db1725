"""NIR import: a NIR graph of a plain spiking CNN becomes a bsnn_jax ``SpikingVGG`` to binarize or fine-tune.

``from_nir(graph)`` reads a chain (every node with one input and one output)::

    Input -> [normalize: 1x1 Conv2d] -> (Conv2d 3x3/1 pad 1 -> LIF -> [AvgPool2d | SumPool2d 2x2]*)+
          -> [AvgPool2d over the whole map] -> Flatten -> Affine | Linear -> Output

as ``export.nir.to_nir`` writes it for ``small_cnn``, ``vgg11``, ``vggsnn`` and ``reference``, and as
snnTorch/Norse write such nets. The inverse of the export's mappings:

* ``Conv2d`` -> ``ConvUnit`` with the NIR kernel (OIHW -> HWIO) and a BatchNorm that passes it
  through (running mean 0, variance 1, scale ``sqrt(1 + eps)``, bias = the conv bias).
* ``LIF`` -> ``nn.LIF`` with ``tau_b = 1 - dt / tau`` (Euler at step ``dt``), ``v_th`` the
  smallest float32 above ``v_threshold`` (our ``u >= v_th`` is NIR's ``v > v_threshold``),
  hard reset. ``r * dt / tau != 1`` scales the input current: it is folded into the conv before.
  ``v_leak`` and ``v_reset`` must be 0, and every LIF must share one ``tau`` and threshold
  (``models`` give all layers one neuron).
* ``SumPool2d`` 2x2 -> an average pool and the next conv's kernel times 4.
* ``Affine``/``Linear`` -> the classifier, its rows reordered from NIR's channel-first flatten.

The variant is ``"bsnn"`` when every conv after the first holds one magnitude per output channel
(``+-g``, as the export writes binary kernels: ``binarize`` gives them back exactly up to
rounding of ``g``), else ``"fp"``; ``variant="bsnn"`` forces binarization of an FP-SNN's kernels
(the start of binarizing it, e.g. with BSO; its outputs then differ from the graph's).
Residual graphs (ResNets) and other node types are refused with ``NIRExportError``.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
from flax import nnx

from bsnn_jax.data.base import Normalization
from bsnn_jax.export.nir import NIRExportError, require_nir
from bsnn_jax.models.common import VARIANTS, NetOptions
from bsnn_jax.models.vgg import SpikingVGG


@dataclasses.dataclass
class ImportedNIR:
    """``model``: the network (evaluation mode, normalized input ``[T, B, H, W, C]`` or ``[B, H, W, C]``);
    ``normalization``: the graph's leading normalization node as a ``data.Normalization``, or None."""

    model: SpikingVGG
    normalization: Normalization | None


def _chain(graph) -> list:
    """The graph's nodes from Input to Output, or a clear error if it is not a chain."""
    nir = require_nir()
    succ = {}
    for a, b in graph.edges:
        if a in succ or sum(1 for _, t in graph.edges if t == b) > 1:
            raise NIRExportError(
                f"the NIR graph branches or merges at {a!r} -> {b!r} (a residual net?); from_nir imports chains "
                "(Conv2d, LIF, pooling, Flatten, Affine), such as the exports of small_cnn, vgg11, vggsnn and reference"
            )
        succ[a] = b
    start = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    if len(start) != 1:
        raise NIRExportError(f"the NIR graph needs exactly one Input node, it has {len(start)}")
    names = [start[0]]
    while names[-1] in succ:
        names.append(succ[names[-1]])
    return [(k, graph.nodes[k]) for k in names]


def _uniform(name: str, field: str, value) -> float:
    values = np.unique(np.asarray(value, np.float64))
    if values.size != 1:
        raise NIRExportError(f"{name}.{field} differs between neurons ({values[:3]}...); bsnn_jax's LIF has one value per layer")
    return float(values[0])


def _neuron(name: str, node, dt: float) -> tuple[dict, float]:
    """``nn.LIF`` keyword arguments of a ``nir.LIF`` at step ``dt``, and its input gain ``r * dt / tau``."""
    tau, r = _uniform(name, "tau", node.tau), _uniform(name, "r", node.r)
    for field in ("v_leak", "v_reset"):
        if _uniform(name, field, getattr(node, field)) != 0:
            raise NIRExportError(f"{name}.{field} is not 0; bsnn_jax's LIF leaks to 0 and resets to 0")
    thr = np.float32(_uniform(name, "v_threshold", node.v_threshold))
    neuron = {"tau": 1.0 - dt / tau, "v_th": float(np.nextafter(thr, np.float32(np.inf))), "reset": "hard"}
    return neuron, r * dt / tau


def _normalization(node) -> Normalization:
    gain, bias = np.diagonal(node.weight[:, :, 0, 0]), node.bias
    if not np.array_equal(np.diag(gain), node.weight[:, :, 0, 0]) or np.any(gain == 0):
        raise NIRExportError("the first 1x1 Conv2d (read as the input normalization) is not diagonal with nonzero gains")
    return Normalization(1.0, tuple((-bias / gain).tolist()), tuple((1.0 / gain).tolist()))


def _binary(kernels: list[np.ndarray]) -> bool:
    return all(np.all(np.abs(k) == np.abs(k).max(axis=(1, 2, 3), keepdims=True)) for k in kernels[1:])


def _parse(graph, dt: float):
    """``(cfg, convs [(weight OIHW, bias)], neurons, head, fc (weight, bias), normalization, input shape CHW)``."""
    nir = require_nir()
    chain = _chain(graph)
    cfg, convs, neurons, norm, gain = [], [], [], None, 1.0
    head, fc = "flatten", None
    for i, (name, node) in enumerate(chain):
        if isinstance(node, nir.Input | nir.Output | nir.Flatten):
            continue
        if isinstance(node, nir.Conv2d) and not convs and norm is None and node.weight.shape[2:] == (1, 1):
            norm = _normalization(node)
        elif isinstance(node, nir.Conv2d):
            if tuple(node.weight.shape[2:]) != (3, 3) or tuple(node.stride) != (1, 1) or tuple(node.padding) != (1, 1):
                raise NIRExportError(f"{name}: bsnn_jax's VGG convs are 3x3, stride 1, padding 1; got {node.weight.shape[2:]}")
            convs.append([np.asarray(node.weight, np.float32) * gain, np.asarray(node.bias, np.float32)])
            cfg.append(node.weight.shape[0])
            gain = 1.0
        elif isinstance(node, nir.LIF):
            neuron, w_in = _neuron(name, node, dt)
            convs[-1] = [convs[-1][0] * w_in, convs[-1][1] * w_in]
            neurons.append(neuron)
        elif isinstance(node, nir.AvgPool2d | nir.SumPool2d):
            kernel = tuple(int(k) for k in np.broadcast_to(node.kernel_size, 2))
            if isinstance(chain[i + 1][1], nir.Flatten) and kernel != (2, 2):  # a pool over the whole map
                head, gain = "gap", float(np.prod(kernel)) if isinstance(node, nir.SumPool2d) else 1.0
                continue
            if kernel != (2, 2) or tuple(np.broadcast_to(node.stride, 2)) != (2, 2):
                raise NIRExportError(f"{name}: bsnn_jax pools 2x2 with stride 2 between convs")
            cfg.append("A")
            gain = 4.0 if isinstance(node, nir.SumPool2d) else 1.0
        elif isinstance(node, nir.Affine | nir.Linear):
            bias = getattr(node, "bias", None)
            fc = (
                np.asarray(node.weight, np.float32) * gain,
                np.zeros(node.weight.shape[0], np.float32) if bias is None else np.asarray(bias),
            )
        else:
            raise NIRExportError(f"{name}: NIR node {type(node).__name__} has no bsnn_jax layer in from_nir")
    if not convs or fc is None or len(neurons) != len(convs):
        raise NIRExportError("from_nir needs (Conv2d -> LIF)+ ... -> Flatten -> Affine; the graph lacks part of it")
    if any(n != neurons[0] for n in neurons):
        raise NIRExportError(f"the graph's LIF layers differ ({neurons[0]} vs others); bsnn_jax models share one neuron")
    shape = tuple(int(v) for v in chain[0][1].input_type["input"])
    return cfg, convs, neurons[0], head, fc, norm, shape


def from_nir(graph, *, timesteps: int = 4, dt: float = 1.0, variant: str | None = None, rngs: int = 0) -> ImportedNIR:
    """A ``SpikingVGG`` computing ``graph`` (module docstring), run for ``timesteps`` steps.

    Args:
      graph: a ``nir.NIRGraph`` (``nir.read(path)``).
      timesteps: T of the model (NIR graphs have none).
      dt: the Euler step the graph's time constants assume (1e-4 for snnTorch's files).
      variant: ``"fp"`` or ``"bsnn"``; by default ``"bsnn"`` if the kernels are +-g per channel.

    Raises:
      NIRExportError: a graph outside the supported chain, or LIF parameters bsnn_jax's LIF cannot take.
    """
    cfg, convs, neuron, head, (fc_w, fc_b), norm, (c, h, w) = _parse(graph, dt)
    variant = variant or ("bsnn" if _binary([k for k, _ in convs]) else "fp")
    if variant not in ("fp", "bsnn"):
        raise NIRExportError(f"variant must be 'fp' or 'bsnn' (AGMM has no NIR form), got {variant!r}")
    opts = NetOptions(VARIANTS[variant], timesteps, time_fold=False, neuron=neuron)
    model = SpikingVGG(cfg, (h, w, c), fc_w.shape[0], opts, head=head, name="nir", rngs=nnx.Rngs(rngs))
    for unit, (kernel, bias) in zip(model.units, convs, strict=True):
        unit.conv.kernel[...] = jnp.asarray(kernel.transpose(2, 3, 1, 0))
        bn = unit.bn
        bn.mean[...], bn.var[...] = jnp.zeros_like(bn.mean[...]), jnp.ones_like(bn.var[...])
        bn.scale[...] = jnp.full_like(bn.scale[...], np.sqrt(np.float32(1.0) + np.float32(bn.epsilon)))
        bn.bias[...] = jnp.asarray(bias)
    fc = fc_w.T
    if head == "flatten":  # NIR flattens (C, H, W); SpikingVGG flattens (H, W, C)
        ch, hh, ww = _cfg_shape(cfg, (c, h, w))
        fc = fc.reshape(ch, hh, ww, -1).transpose(1, 2, 0, 3).reshape(fc.shape)
    model.fc.kernel[...] = jnp.asarray(fc)
    model.fc.bias[...] = jnp.asarray(fc_b)
    model.eval()
    return ImportedNIR(model, norm)


def _cfg_shape(cfg, chw: tuple[int, int, int]) -> tuple[int, int, int]:
    """The (C, H, W) after the VGG stack ``cfg`` (ints are 3x3 'same' convs, "A" 2x2 pools)."""
    c, h, w = chw
    for item in cfg:
        if item == "A":
            h, w = h // 2, w // 2
        else:
            c = item
    return c, h, w
