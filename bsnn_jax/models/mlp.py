"""A spiking MLP for feature vectors and sequences: ``dense -> BN [-> AGMM] -> LIF`` per hidden layer.

It takes ``[T, B, *input_shape]`` sequences (one feature vector per time step: SHD-style spike
counts, one image row per step) or static ``[B, *input_shape]`` inputs repeated over T (direct
encoding); each example is flattened to ``F = prod(input_shape)`` features. As in the 2-D families
the first layer (reading real values) and the classifier stay full precision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
from flax import nnx

from bsnn_jax.models.common import DenseUnit, NetOptions, SpikingNet, remat_call
from bsnn_jax.nn import BinaryLinear


class SpikingMLP(SpikingNet):
    """Hidden layers of widths ``hidden``: the first full precision, the others binary in the
    ``bsnn``/``agmm`` variants, then a full-precision classifier ``fc``."""

    def __init__(
        self,
        hidden: Sequence[int],
        input_shape: tuple[int, ...],
        num_classes: int,
        opts: NetOptions,
        *,
        name: str = "mlp",
        rngs: nnx.Rngs,
    ):
        if not hidden:
            raise ValueError(f"{name} needs at least one hidden layer, got hidden={tuple(hidden)}")
        self._init_net(name, input_shape, opts)
        self.remat = opts.remat
        features = math.prod(input_shape)
        units = []
        for i, width in enumerate(hidden):
            units.append(DenseUnit(features, width, opts, binarizable=i > 0, rngs=rngs))
            features = width
        self.units = nnx.List(units)
        self.lifs = nnx.List([opts.lif() for _ in hidden])
        self.fc = BinaryLinear(features, num_classes, binary=False, rngs=rngs)

    def _stem(self, x: jax.Array) -> jax.Array:
        return self.units[0](x.reshape(x.shape[:2] + (-1,)))

    def __call__(self, x: jax.Array) -> jax.Array:
        """``[T, B, *input_shape]`` or a static ``[B, *input_shape]`` -> logits ``[T, B, num_classes]``."""
        x = self.lifs[0](self.run_stem(self._stem, x))
        for unit, lif in zip(self.units[1:], self.lifs[1:], strict=True):
            x = remat_call(self.remat, lambda unit, lif, x: lif(unit(x)), unit, lif, x)
        return self.fc(x)
