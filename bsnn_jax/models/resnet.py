"""Bi-Real spiking ResNets with double skip connections: ResNet-19 (CIFAR), ResNet-18 (ImageNet)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from bsnn_jax.models.common import ConvUnit, NetOptions, SpikingNet, remat_call
from bsnn_jax.nn import BinaryLinear, pool


class Downsample(nnx.Module):
    """Shortcut when stride or width changes: AvgPool(stride) -> full-precision conv1x1 -> BN.

    Full precision: the papers' model sizes only add up that way (methods-spec 1.6).
    """

    def __init__(self, in_features: int, out_features: int, stride: int, opts: NetOptions, *, rngs: nnx.Rngs):
        self.stride, self.time_fold = stride, opts.time_fold
        self.proj = ConvUnit(in_features, out_features, opts, kernel_size=1, binarizable=False, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.stride > 1:
            x = pool(x, self.stride, fold=self.time_fold)
        return self.proj(x)


class BiRealBlock(nnx.Module):
    """One binary conv with its own identity shortcut (Bi-Real, Liu et al. 2018):

    ``x_{k+1} = AGMM(BN(BConv(LIF(x_k)))) + shortcut(x_k)``; the residual stream x stays real-valued.
    Two such blocks make one basic block with the "double skip connections" of AGMM's ResNets.
    """

    def __init__(self, in_features: int, out_features: int, stride: int, opts: NetOptions, *, rngs: nnx.Rngs):
        self.lif = opts.lif()
        self.unit = ConvUnit(in_features, out_features, opts, strides=stride, rngs=rngs)
        needs_projection = stride != 1 or in_features != out_features
        self.shortcut = Downsample(in_features, out_features, stride, opts, rngs=rngs) if needs_projection else None

    def __call__(self, x: jax.Array) -> jax.Array:
        shortcut = x if self.shortcut is None else self.shortcut(x)
        return self.unit(self.lif(x)) + shortcut


class Stem(nnx.Module):
    """Full-precision first conv + BN (+ maxpool 3/2 for ImageNet)."""

    def __init__(
        self, in_features: int, out_features: int, kernel_size: int, stride: int, maxpool: bool, opts: NetOptions, *, rngs: nnx.Rngs
    ):
        self.unit = ConvUnit(in_features, out_features, opts, kernel_size=kernel_size, strides=stride, binarizable=False, rngs=rngs)
        self.maxpool, self.time_fold = maxpool, opts.time_fold

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.unit(x)
        return pool(x, 3, stride=2, padding=1, kind="max", fold=self.time_fold) if self.maxpool else x


# (kernel, stride, max-pool 3/2 after it) of the full-precision stem conv (+ BN).
STEMS = {
    "cifar": (3, 1, False),  # ResNet-19 (Q-SNN, AGMM)
    "imagenet": (7, 2, True),  # ResNet-18's usual stem (torchvision, Q-SNN's resnet18)
    "bireal": (3, 1, True),  # the BSO repository's birealnet18 (models/resnet.py): 3x3/1 + BN + max-pool
}


class BiRealResNet(SpikingNet):
    """Stem -> stages of Bi-Real blocks -> global average pool -> FC (no LIF before the pool).

    ``stages`` lists ``(width, number of single-conv blocks, stride of the first)``; ``stem`` is a
    key of :data:`STEMS`. At 224x224 the ``"bireal"`` stem leaves 112x112 maps for the first
    stage where ``"imagenet"`` leaves 56x56, so every block costs 4x the operations.
    """

    def __init__(
        self,
        stages: Sequence[tuple[int, int, int]],
        input_shape: tuple[int, int, int],
        num_classes: int,
        opts: NetOptions,
        *,
        stem: str = "cifar",
        name: str = "resnet",
        rngs: nnx.Rngs,
    ):
        if stem not in STEMS:
            raise ValueError(f"unknown stem {stem!r}; known: {', '.join(STEMS)}")
        self._init_net(name, input_shape, opts)
        width = stages[0][0]
        self.stem = Stem(input_shape[-1], width, *STEMS[stem], opts, rngs=rngs)
        blocks = []
        for out_width, count, stride in stages:
            for i in range(count):
                blocks.append(BiRealBlock(width, out_width, stride if i == 0 else 1, opts, rngs=rngs))
                width = out_width
        self.blocks = nnx.List(blocks)
        self.remat = opts.remat_for(len(blocks))
        self.fc = BinaryLinear(width, num_classes, binary=False, spike_input=False, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """``[T, B, H, W, C]`` or a static ``[B, H, W, C]`` -> logits ``[T, B, num_classes]``."""
        x = self.run_stem(self.stem, x)
        for block in self.blocks:
            x = remat_call(self.remat, lambda block, x: block(x), block, x)
        return self.fc(jnp.mean(x, axis=(2, 3)))
