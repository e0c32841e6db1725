"""The deployed network: every ``ConvUnit`` replaced by a ``PackedConvUnit`` (BN folded).

A unit ``BN(conv(x, W))`` of the trained model, with ``W = gamma * sign(w)`` for a binary conv
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
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

from bsnn_jax import ops
from bsnn_jax.export.bits import pack_signs_jax, unpack_signs_jax
from bsnn_jax.models import ConvUnit
from bsnn_jax.nn import AGMM
from bsnn_jax.nn.online_state import submodule
from bsnn_jax.nn.time import time_map
from bsnn_jax.ops import conv2d


class SignBits(nnx.Variable):
    """A binary kernel's signs, 8 per byte, in the layout of ``export.bits``."""


class FoldedAffine(nnx.Variable):
    """Per-channel ``scale`` or ``shift`` of a conv with its BN (and gamma) folded in."""


class PackedConvUnit(nnx.Module):
    """``y = conv(x, K) * scale + shift``, then AGMM if the trained unit had it (module docstring).

    ``kernel`` is ``SignBits`` (uint8, ``ceil(N/8)`` bytes) for a binary conv, or the float
    kernel (``nnx.Param``, HWIO) for a full-precision one; ``kernel_shape`` is the HWIO shape.
    """

    def __init__(self, unit: ConvUnit, kernel: jax.Array, scale: jax.Array, shift: jax.Array, agmm: AGMM | None):
        conv = unit.conv
        self.binary, self.kernel_shape = conv.binary, tuple(conv.kernel.shape)
        self.strides, self.padding, self.time_fold = conv.strides, conv.padding, conv.time_fold
        self.kernel = SignBits(kernel) if self.binary else nnx.Param(kernel)
        self.scale, self.shift = FoldedAffine(scale), FoldedAffine(shift)
        self.agmm = agmm

    def weight(self) -> jax.Array:
        """The float32 kernel the conv runs with: +-1 unpacked from the bits, or the FP kernel."""
        if self.binary:
            return unpack_signs_jax(self.kernel[...], self.kernel_shape)
        return self.kernel[...].astype(jnp.float32)

    def __call__(self, x: jax.Array) -> jax.Array:
        w = self.weight()
        conv = lambda step: conv2d(step, w, self.strides, self.padding)  # noqa: E731
        y = time_map(conv, x.astype(jnp.float32), fold=self.time_fold) * self.scale[...] + self.shift[...]
        return y if self.agmm is None else self.agmm(y)


def fold_unit(unit: ConvUnit) -> PackedConvUnit:
    """The packed unit computing ``unit`` in evaluation mode (the module docstring's equations)."""
    conv, bn = unit.conv, unit.bn
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


def to_packed(model: nnx.Module) -> tuple[nnx.Module, list[str]]:
    """A copy of ``model`` (any family) with every ``ConvUnit`` folded into a ``PackedConvUnit``.

    Works on concrete models (export) and inside ``nnx.eval_shape`` (``load`` rebuilds the
    structure from the manifest's architecture without computing anything). ``model``'s own
    modules are left untouched; arrays not folded are shared with it.

    Returns:
      ``(packed model, dotted paths of the folded units)``.
    """
    packed = nnx.merge(*nnx.split(model))  # new module objects, same arrays
    paths = [path for path, m in nnx.iter_modules(packed) if isinstance(m, ConvUnit)]
    for path in paths:
        parent = submodule(packed, path[:-1])
        folded = fold_unit(submodule(parent, path[-1:]))
        if isinstance(path[-1], int):
            parent[path[-1]] = folded
        else:
            setattr(parent, path[-1], folded)
    return packed, [".".join(map(str, p)) for p in paths]
