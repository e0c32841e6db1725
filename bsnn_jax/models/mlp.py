"""A spiking MLP for feature vectors and sequences: ``dense -> BN [-> AGMM] -> LIF`` per hidden layer.

It takes ``[T, B, *input_shape]`` sequences (one feature vector per time step: SHD-style spike
counts, one image row per step) or static ``[B, *input_shape]`` inputs repeated over T (direct
encoding); each example is flattened to ``F = prod(input_shape)`` features. As in the 2-D families
the first layer (reading real values) and the classifier stay full precision.

``recurrent`` gives hidden layers a recurrent connection (``nn.RecurrentLIF``: each neuron also
hears the layer's spikes of the step before through weights V, binary in the binary variants).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
from flax import nnx

from bsnn_jax.models.common import DenseUnit, NetOptions, SpikingNet, remat_call
from bsnn_jax.nn import BinaryLinear, RecurrentLIF


def recurrent_layers(recurrent: bool | Sequence[bool], depth: int) -> tuple[bool, ...]:
    """One flag per hidden layer: ``True`` / ``False`` for all of them, or a flag for each."""
    if isinstance(recurrent, bool):
        return (recurrent,) * depth
    flags = tuple(bool(r) for r in recurrent)
    if len(flags) != depth:
        raise ValueError(f"recurrent needs one flag per hidden layer ({depth}), got {tuple(recurrent)}; or pass True/False for all")
    return flags


class SpikingMLP(SpikingNet):
    """Hidden layers of widths ``hidden``: the first full precision, the others binary in the
    ``bsnn``/``agmm`` variants, then a full-precision classifier ``fc``.

    ``recurrent`` (``True``, or one flag per hidden layer) makes a hidden layer's neurons
    :class:`nn.RecurrentLIF`: ``H[t] = tau U[t-1] + AGMM(BN(W x))[t] + V_b S[t-1]``, V binary (with its
    own per-unit scale) in the ``bsnn``/``agmm`` variants, in the first layer too (its W reads real
    values, V reads spikes), BN and AGMM normalising the feed-forward current only.
    ``self.recurrent`` says whether any layer is recurrent (``recurrent_layers``: which).
    """

    def __init__(
        self,
        hidden: Sequence[int],
        input_shape: tuple[int, ...],
        num_classes: int,
        opts: NetOptions,
        *,
        name: str = "mlp",
        recurrent: bool | Sequence[bool] = False,
        rngs: nnx.Rngs,
    ):
        if not hidden:
            raise ValueError(f"{name} needs at least one hidden layer, got hidden={tuple(hidden)}")
        self._init_net(name, input_shape, opts)
        self.remat = opts.remat_for(len(hidden) - 1)
        features = math.prod(input_shape)
        units = []
        for i, width in enumerate(hidden):
            units.append(DenseUnit(features, width, opts, binarizable=i > 0, rngs=rngs))
            features = width
        self.units = nnx.List(units)
        self.recurrent_layers = recurrent_layers(recurrent, len(hidden))
        self.recurrent = any(self.recurrent_layers)
        self.lifs = nnx.List([self._neurons(unit, r, opts, rngs) for unit, r in zip(units, self.recurrent_layers, strict=True)])
        self.fc = BinaryLinear(features, num_classes, binary=False, rngs=rngs)

    @staticmethod
    def _neurons(unit: DenseUnit, recurrent: bool, opts: NetOptions, rngs: nnx.Rngs):
        if not recurrent:
            return opts.lif()
        width = unit.dense.kernel.shape[-1]
        return RecurrentLIF(
            width, binary=opts.variant.binary, compute_dtype=opts.compute_dtype, detach_scale=opts.detach_scale, rngs=rngs, **opts.neuron
        )

    def _stem(self, x: jax.Array) -> jax.Array:
        return self.units[0](x.reshape(x.shape[:2] + (-1,)))

    def __call__(self, x: jax.Array) -> jax.Array:
        """``[T, B, *input_shape]`` or a static ``[B, *input_shape]`` -> logits ``[T, B, num_classes]``."""
        x = self.lifs[0](self.run_stem(self._stem, x))
        for unit, lif in zip(self.units[1:], self.lifs[1:], strict=True):
            x = remat_call(self.remat, lambda unit, lif, x: lif(unit(x)), unit, lif, x)
        return self.fc(x)
