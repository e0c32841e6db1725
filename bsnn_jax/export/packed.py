"""The deployed network: every unit (``ConvUnit``, ``Conv1dUnit``, ``DenseUnit``) replaced by a
``PackedConvUnit`` (BN folded).

A unit ``BN(conv(x, W))`` of the trained model (``conv`` a 2-D or 1-D convolution or a dense
layer), with ``W = gamma * sign(w)`` for a binary conv
(``gamma = mean |w|`` per output channel; 1 for a latent-free +-1 kernel, whose mean |w| is 1)
and ``W = w`` for a full-precision one, plus the conv bias ``c`` if any, becomes, in evaluation
mode (BN with its running ``mean``, ``var``)::

    y = conv(x, K) * scale + shift
    scale = g * s,   shift = beta + (c - mean) * s,   s = BN_scale / sqrt(var + eps)

with ``K = sign(w)`` (+-1, stored 1 bit per weight) and ``g = gamma`` for a binary conv, or
``K = w`` and ``g = 1`` for a full-precision one. ``s`` is computed exactly as Flax's BatchNorm
computes it, so the only difference from the float model is the order of float roundings.
AGMM (Eq. 11, ``x * sigmoid(alpha[t] * mean(x))``) is not affine, but it comes after BN, so
it simply follows the folded affine. BN never sits elsewhere in these families, so every BN
is folded; two floats per channel replace gamma and BN's four vectors.

The binary conv runs as an integer-valued accumulation: spikes are {0, 1} and 2x2
average-pooled spikes are multiples of 1/4, the weights are +-1, so every partial sum is a
multiple of 1/4 below ``fan_in`` and float32 (24-bit mantissa) holds it exactly while
``4 * fan_in < 2^24`` (ResNet-19's widest: 4608). Float32 was chosen over int8 operands with
``preferred_element_type=int32``: both are exact here, XLA:CPU ran them at the same speed
(28-33 ms vs 27-34 ms for a 256x14x14x32 -> 64 conv on this machine), and float32 needs no
per-layer bookkeeping of the pooling denominator. The kernel stays packed in the module
(``SignBits``, uint8) and is unpacked to +-1 inside the jitted forward pass.

A binary ``SynapticLayer`` outside any unit (the recurrent V of ``nn.RecurrentLIF``, which no BN
follows) is packed in place (``pack_synapse``): its kernel becomes ``SignBits`` plus a float32
per-output-channel ``scale = gamma``, and its ``weight`` is ``scale * K``, exactly the
``gamma * sign(w)`` of AGMM Eq. 5 it computed before (``ops.binarize``), so every caller of the
layer (its ``__call__``, or ``weight`` as ``RecurrentLIF`` reads it) runs unchanged.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

from bsnn_jax import ops
from bsnn_jax.export.bits import pack_signs_jax, unpack_signs_jax
from bsnn_jax.models.common import NormalizedUnit
from bsnn_jax.nn import AGMM, BinaryConv, BinaryConv1d, SynapticLayer
from bsnn_jax.nn.online_state import submodule
from bsnn_jax.nn.time import time_map
from bsnn_jax.ops import conv1d, conv2d


class SignBits(nnx.Variable):
    """A binary kernel's signs, 8 per byte, in the layout of ``export.bits``."""


class FoldedAffine(nnx.Variable):
    """Per-channel ``scale`` or ``shift`` of a conv with its BN (and gamma) folded in."""


def synapse(unit: NormalizedUnit) -> SynapticLayer:
    """The synaptic layer of a unit: ``conv`` of the conv units, ``dense`` of ``DenseUnit``."""
    return unit.dense if hasattr(unit, "dense") else unit.conv


class PackedConvUnit(nnx.Module):
    """``y = conv(x, K) * scale + shift``, then AGMM if the trained unit had it (module docstring).

    ``kernel`` is ``SignBits`` (uint8, ``ceil(N/8)`` bytes) for a binary layer, or the float
    kernel (``nnx.Param``) for a full-precision one; ``kernel_shape`` is its shape (HWIO, WIO
    or IO); ``kind`` is ``"conv2d"``, ``"conv1d"`` or ``"dense"``.
    """

    def __init__(self, unit: NormalizedUnit, kernel: jax.Array, scale: jax.Array, shift: jax.Array, agmm: AGMM | None):
        conv = synapse(unit)
        self.binary, self.kernel_shape = conv.binary, tuple(conv.kernel.shape)
        self.kind = "conv2d" if isinstance(conv, BinaryConv) else "conv1d" if isinstance(conv, BinaryConv1d) else "dense"
        self.strides = getattr(conv, "strides", 1)
        self.padding, self.time_fold = getattr(conv, "padding", 0), getattr(conv, "time_fold", False)
        self.kernel = SignBits(kernel) if self.binary else nnx.Param(kernel)
        self.scale, self.shift = FoldedAffine(scale), FoldedAffine(shift)
        self.agmm = agmm

    def weight(self) -> jax.Array:
        """The float32 kernel the conv runs with: +-1 unpacked from the bits, or the FP kernel."""
        if self.binary:
            return unpack_signs_jax(self.kernel[...], self.kernel_shape)
        return self.kernel[...].astype(jnp.float32)

    def _linear(self, x: jax.Array, w: jax.Array) -> jax.Array:
        if self.kind == "dense":
            return x @ w
        if self.kind == "conv1d":
            return time_map(lambda step: conv1d(step, w, self.padding), x, fold=self.time_fold)
        return time_map(lambda step: conv2d(step, w, self.strides, self.padding), x, fold=self.time_fold)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = self._linear(x.astype(jnp.float32), self.weight()) * self.scale[...] + self.shift[...]
        return y if self.agmm is None else self.agmm(y)


def fold_unit(unit: NormalizedUnit) -> PackedConvUnit:
    """The packed unit computing ``unit`` in evaluation mode (the module docstring's equations)."""
    conv, bn = synapse(unit), unit.bn
    w = conv.kernel[...].astype(jnp.float32)
    channels = w.shape[-1]
    # As flax.nnx.BatchNorm (``_normalize``): mul = rsqrt(var + eps) * scale.
    s = lax.rsqrt(bn.var[...] + bn.epsilon)
    if bn.scale is not None:
        s = s * bn.scale[...]
    beta = bn.bias[...] if bn.bias is not None else jnp.zeros(channels, jnp.float32)
    c = conv.bias[...] if conv.bias is not None else jnp.zeros(channels, jnp.float32)
    shift = beta + (c - bn.mean[...]) * s
    if conv.binary:
        # gamma = mean |w| (AGMM Eq. 5); a latent-free +-1 kernel, used unscaled, has mean |w| = 1 too.
        kernel, scale = pack_signs_jax(w), ops.channel_scale(w) * s
    else:
        kernel, scale = w, s
    return PackedConvUnit(unit, kernel, scale, shift, unit.agmm)


class PackedSynapse(SynapticLayer):
    """Mixin of a packed binary layer: ``kernel`` is ``SignBits`` of ``kernel_shape``, ``scale`` its gamma.

    ``packed_class`` puts it before the layer's own class, so the layer keeps its linear map
    (``_apply``), bias and call; only the kernel it reads changes.
    """

    def weight(self, dtype) -> jax.Array:
        """``gamma * sign(w)`` (AGMM Eq. 5) from the stored bits and per-output-channel ``scale``."""
        return (unpack_signs_jax(self.kernel[...], self.kernel_shape) * self.scale[...]).astype(dtype)


@functools.cache
def packed_class(cls: type[SynapticLayer]) -> type[SynapticLayer]:
    """``cls`` with ``PackedSynapse.weight`` (one class per layer class, so ``load`` rebuilds the same graph)."""
    return type(f"Packed{cls.__name__}", (PackedSynapse, cls), {"__module__": __name__})


def pack_synapse(layer: SynapticLayer) -> None:
    """Turns binary ``layer`` into its ``packed_class`` in place: kernel to sign bits, gamma to ``scale``.

    gamma = mean |w| per output channel (AGMM Eq. 5, ``ops.channel_scale``); a latent-free +-1
    kernel (``nn.latent_free``, used unscaled) has mean |w| = 1, so it computes the same.
    """
    w = layer.kernel[...].astype(jnp.float32)
    # A class swap, not a wrapper: the parent calls the layer or reads its ``weight``
    # (``RecurrentLIF``), and its strides, padding, bias and modes all stay as trained.
    layer.__class__ = packed_class(type(layer))
    layer.kernel_shape = tuple(w.shape)
    layer.kernel, layer.scale = SignBits(pack_signs_jax(w)), FoldedAffine(ops.channel_scale(w))


def to_packed(model: nnx.Module) -> tuple[nnx.Module, list[str]]:
    """A copy of ``model`` (any family) with every unit (conv, 1-D conv, dense) folded into a ``PackedConvUnit``
    and every other binary ``SynapticLayer`` packed by ``pack_synapse``.

    Works on concrete models (export) and inside ``nnx.eval_shape`` (``load`` rebuilds the
    structure from the manifest's architecture without computing anything). ``model``'s own
    modules are left untouched; arrays not folded are shared with it.

    Returns:
      ``(packed model, dotted paths of the folded units)``.
    """
    packed = nnx.merge(*nnx.split(model))  # new module objects, same arrays
    paths = [path for path, m in nnx.iter_modules(packed) if isinstance(m, NormalizedUnit)]
    for path in paths:
        parent = submodule(packed, path[:-1])
        folded = fold_unit(submodule(parent, path[-1:]))
        if isinstance(path[-1], int):
            parent[path[-1]] = folded
        else:
            setattr(parent, path[-1], folded)
    for module in [m for _, m in nnx.iter_modules(packed) if isinstance(m, SynapticLayer) and m.binary]:
        pack_synapse(module)
    return packed, [".".join(map(str, p)) for p in paths]
