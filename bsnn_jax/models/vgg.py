"""Plain spiking VGG stacks: VGGSNN (DVS), the BSO paper's VGG-11 (CIFAR) and a small net for the
built-in data, and the speed benchmark's reference net. Each conv is ``conv3x3 -> BN [-> AGMM] -> LIF``; ``"A"`` is a 2x2 average pool."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from bsnn_jax.models.common import ConvUnit, ModelInputError, NetOptions, SpikingNet, remat_call
from bsnn_jax.nn import BinaryLinear, pool

VGGSNN = (64, 128, "A", 256, 256, "A", 512, 512, "A", 512, 512, "A")
VGG11 = (64, 128, "A", 256, 256, "A", 512, 512, "A", 512, 512)
SMALL = (32, "A", 64, "A", 128)
REFERENCE = (64, 128, "A", 256, "A", 256)  # the peers' benchmark net (``bsnn bench``)


class SpikingVGG(SpikingNet):
    """A VGG-style spiking net. The first conv and the classifier stay full precision.

    ``head="flatten"`` reads the whole last spike map per time step (VGGSNN, TET); ``head="gap"``
    global-average-pools it first (VGG-11 of BSO). ``fc_init`` initialises the classifier's
    kernel (default ``lecun_normal``).
    """

    def __init__(
        self,
        cfg: Sequence[int | str],
        input_shape: tuple[int, int, int],
        num_classes: int,
        opts: NetOptions,
        *,
        head: str = "flatten",
        first_conv_bias: bool = False,
        fc_init=None,
        name: str = "vgg",
        rngs: nnx.Rngs,
    ):
        if head not in ("flatten", "gap"):
            raise ValueError(f"unknown head {head!r}; known: ['flatten', 'gap']")
        self._init_net(name, input_shape, opts.timesteps)
        self.head, self.time_fold, self.remat = head, opts.time_fold, opts.remat
        self.cfg = tuple(cfg)
        h, w, channels = input_shape
        units, lifs = [], []
        for item in self.cfg:
            if item == "A":
                h, w = h // 2, w // 2
                continue
            first = not units
            units.append(ConvUnit(channels, item, opts, binarizable=not first, use_bias=first and first_conv_bias, rngs=rngs))
            lifs.append(opts.lif())
            channels = item
        if h < 1 or w < 1:
            pools = self.cfg.count("A")
            raise ModelInputError(
                f"input_shape {tuple(input_shape)} is too small for {name}: its {pools} 2x2 poolings need frames of at "
                f"least {2**pools}x{2**pools}; reshape or pad the data to that (a 1-d signal of length L fits as "
                f"[N, H, W] with H*W = L), or use a model that takes any frame size, such as resnet19"
            )
        self.units, self.lifs = nnx.List(units), nnx.List(lifs)
        features = channels if head == "gap" else h * w * channels
        self.fc = BinaryLinear(features, num_classes, binary=False, kernel_init=fc_init, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """``[T, B, H, W, C]`` or a static ``[B, H, W, C]`` -> logits ``[T, B, num_classes]``."""
        layer = 0
        for item in self.cfg:
            if item == "A":
                x = pool(x, 2, fold=self.time_fold)
                continue
            unit, lif = self.units[layer], self.lifs[layer]
            if layer == 0:
                x = lif(self.run_stem(unit, x))
            else:
                x = remat_call(self.remat, lambda unit, lif, x: lif(unit(x)), unit, lif, x)
            layer += 1
        x = jnp.mean(x, axis=(2, 3)) if self.head == "gap" else x.reshape(x.shape[:2] + (-1,))
        return self.fc(x)
