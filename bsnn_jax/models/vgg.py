"""Plain spiking VGG stacks: VGGSNN (DVS), the BSO paper's VGG-11 (CIFAR) and a small net for the
built-in data, the speed benchmark's reference net, and their 1-D twin for signals (``conv1d``).
Each conv is ``conv3x3 -> BN [-> AGMM] -> LIF``; ``"A"`` is a 2x2 average pool (2 for 1-D)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from bsnn_jax.models.common import Conv1dUnit, ConvUnit, ModelInputError, NetOptions, SpikingNet, remat_call
from bsnn_jax.nn import BinaryLinear, pool, time_map

VGGSNN = (64, 128, "A", 256, 256, "A", 512, 512, "A", 512, 512, "A")
VGG11 = (64, 128, "A", 256, 256, "A", 512, 512, "A", 512, 512)
SMALL = (32, "A", 64, "A", 128)
REFERENCE = (64, 128, "A", 256, "A", 256)  # the peers' benchmark net (``bsnn bench``)
SIGNAL = (32, "A", 64, "A", 128)  # the 1-D net for signals and sequences (``conv1d``)


def _pool1d(x: jax.Array, *, fold: bool) -> jax.Array:
    """2-wide average pooling over the length axis of every time step of ``[T, B, L, C]``."""
    return time_map(lambda z: nnx.avg_pool(z, (2,), strides=(2,)), x, fold=fold)


def signal_shape(input_shape: tuple[int, ...], name: str) -> tuple[int, int]:
    """``(L, C)`` of a 1-D net's input: ``(L, C)``, or ``(L, 1, C)`` as the data pipeline carries signals."""
    if len(input_shape) == 2 or (len(input_shape) == 3 and input_shape[1] == 1):
        return input_shape[0], input_shape[-1]
    raise ModelInputError(
        f"{name} is a 1-D convnet for signals [L, C] (or [L, 1, C]), got input_shape {tuple(input_shape)}; "
        "use a 2-D family such as small_cnn for images, or mlp for feature vectors"
    )


class SpikingVGG(SpikingNet):
    """A VGG-style spiking net. The first conv and the classifier stay full precision.

    ``head="flatten"`` reads the whole last spike map per time step (VGGSNN, TET); ``head="gap"``
    global-average-pools it first (VGG-11 of BSO). ``fc_init`` initialises the classifier's
    kernel (default ``lecun_normal``). ``dims=1`` makes it a 1-D convnet over signals
    ``[B, L, C]`` / sequences ``[T, B, L, C]`` (``input_shape=(L, C)``, or ``(L, 1, C)`` as the data
    pipeline carries them).
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
        dims: int = 2,
        rngs: nnx.Rngs,
    ):
        if head not in ("flatten", "gap"):
            raise ValueError(f"unknown head {head!r}; known: ['flatten', 'gap']")
        self._init_net(name, input_shape, opts)
        self.head, self.time_fold = head, opts.time_fold
        self.cfg, self.dims = tuple(cfg), dims
        if dims == 1:
            length, channels = self.signal = signal_shape(input_shape, name)
            h, w = length, 1
        else:
            h, w, channels = input_shape
        units, lifs = [], []
        for item in self.cfg:
            if item == "A":
                h, w = h // 2, w if dims == 1 else w // 2
                continue
            first = not units
            if dims == 1:
                units.append(Conv1dUnit(channels, item, opts, binarizable=not first, rngs=rngs))
            else:
                units.append(ConvUnit(channels, item, opts, binarizable=not first, use_bias=first and first_conv_bias, rngs=rngs))
            lifs.append(opts.lif())
            channels = item
        if dims == 1 and h < 1:
            raise ModelInputError(
                f"input_shape {tuple(input_shape)} is too small for {name}: its {self.cfg.count('A')} 2-wide poolings need "
                f"signals of at least {2 ** self.cfg.count('A')} samples; pad the signals to that length"
            )
        if h < 1 or w < 1:
            pools = self.cfg.count("A")
            raise ModelInputError(
                f"input_shape {tuple(input_shape)} is too small for {name}: its {pools} 2x2 poolings need frames of at "
                f"least {2**pools}x{2**pools}; reshape or pad the data to that (a 1-d signal of length L fits as "
                f"[N, H, W] with H*W = L), or use a model that takes any frame size, such as resnet19"
            )
        self.units, self.lifs = nnx.List(units), nnx.List(lifs)
        self.remat = opts.remat_for(len(units) - 1)  # every unit but the stem
        features = channels if head == "gap" else h * w * channels
        self.fc = BinaryLinear(features, num_classes, binary=False, kernel_init=fc_init, rngs=rngs)

    def _stem(self, x: jax.Array) -> jax.Array:
        """The first conv unit; a 1-D net first drops the pipeline's width-1 axis (``[.., L, 1, C]``)."""
        return self.units[0](x.reshape(x.shape[:2] + self.signal) if self.dims == 1 else x)

    def __call__(self, x: jax.Array) -> jax.Array:
        """``[T, B, H, W, C]`` or a static ``[B, H, W, C]`` (1-D: ``[T, B, L, C]`` or ``[B, L, C]``)
        -> logits ``[T, B, num_classes]``."""
        layer = 0
        for item in self.cfg:
            if item == "A":
                x = _pool1d(x, fold=self.time_fold) if self.dims == 1 else pool(x, 2, fold=self.time_fold)
                continue
            unit, lif = self.units[layer], self.lifs[layer]
            if layer == 0:
                x = lif(self.run_stem(self._stem, x))
            else:
                x = remat_call(self.remat, lambda unit, lif, x: lif(unit(x)), unit, lif, x)
            layer += 1
        x = jnp.mean(x, axis=tuple(range(2, x.ndim - 1))) if self.head == "gap" else x.reshape(x.shape[:2] + (-1,))
        return self.fc(x)
