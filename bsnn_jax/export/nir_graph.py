"""The modules an imported NIR graph runs with: ``GraphNet`` executes nodes in topological order.

Every tensor is time-major and channel-last, as everywhere in bsnn_jax: ``[T, B, H, W, C]`` maps,
``[T, B, L, C]`` signals, ``[T, B, F]`` vectors; ``nir_import`` converts NIR's channel-first
parameters once, at import. A node's input is the sum of its predecessors' outputs (NIR's rule for
a node with several inputs: residual merges), so ``GraphNet`` only needs, per node, the indices of
the nodes it reads.

* ``GraphSynapse``: Conv1d, Conv2d (any kernel, stride, padding, dilation, groups), Affine and
  Linear as an ``nn.SynapticLayer``, so the optimizers, the flip-ratio metric, the size report
  and the online/latent-free views treat it as the families' layers. A binary one (NIR kernel
  ``+-g`` per output channel) holds ``sign`` as a ``BinaryParam`` of +-1 and ``g`` as a
  full-precision per-channel ``gain``: ``y = conv(x, binarize(K)) * g + b`` (AGMM Eq. 2 and 5
  with ``gamma`` = 1 for a +-1 kernel), which BSO/T-BSO flip and the latent-weight optimizers train alike.
* ``GraphNeuron``: NIR's LIF/IF as ``nn.TracingLIF`` (AGMM Eq. 1-4) behind a fixed per-neuron
  input map ``x -> x * gain + offset`` (the Euler step's ``dt r / tau`` and ``dt v_leak / tau``,
  divided by per-neuron thresholds; ``nir_import`` derives them).
  With a recurrent kernel V (the import of a cycle ``LIF -> Linear -> LIF``) it is an
  ``nn.RecurrentLIF``, scanned over T, ``S[t-1]`` carried.
* ``Threshold`` (NIR Threshold: ``x > theta``, a surrogate gradient for training), ``Scale``
  (``x * s``), ``Pool`` (SumPool2d, AvgPool2d counting padded zeros as PyTorch does) and
  ``Flatten`` (channel-first, as NIR's shapes are).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax

from bsnn_jax import ops
from bsnn_jax.models.common import VARIANTS, NetOptions, SpikingNet, check_input
from bsnn_jax.nn import RecurrentLIF, SynapticLayer, TracingLIF, default_time_fold, time_map


class FixedMap(nnx.Variable):
    """A per-neuron constant of the imported graph (scales, offsets, thresholds): not trained."""


_CONV_DIMS = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC")}


class GraphSynapse(SynapticLayer):
    """Conv (``dims`` 1 or 2) or dense (``dims`` 0) layer of an imported graph (module docstring).

    ``kernel`` is channel-last (WIO, HWIO or IO); ``gain`` the per-channel magnitude of a binary
    kernel (None otherwise); ``shift`` the NIR bias, added after the gain; ``padding``
    ``((lo, hi), ...)`` per spatial axis.
    """

    def __init__(self, kernel, bias, *, gain=None, dims=0, stride=(), padding=(), dilation=(), groups=1, spike_input=True):
        self.dims, self.stride, self.padding = dims, tuple(stride), tuple(tuple(p) for p in padding)
        self.dilation, self.groups, self.time_fold = tuple(dilation), groups, default_time_fold()
        init = lambda key, shape: jnp.asarray(kernel, jnp.float32)  # noqa: E731
        binary = gain is not None
        self._init_weights(
            tuple(kernel.shape),
            init,
            binary=binary,
            use_bias=False,
            spike_input=spike_input,
            binarizable=binary,
            compute_dtype=None,
            detach_scale=False,
            rngs=nnx.Rngs(0),
        )
        self.gain = nnx.Param(jnp.asarray(gain, jnp.float32)) if binary else None
        self.shift = None if bias is None else nnx.Param(jnp.asarray(bias, jnp.float32))

    def _plain_conv2d(self) -> bool:
        (p, q), (r, s) = self.padding
        return self.groups == 1 and self.dilation == (1, 1) and len(set(self.stride)) == 1 and p == q == r == s

    def _conv(self, x: jax.Array, w: jax.Array) -> jax.Array:
        if self.dims == 2 and self._plain_conv2d():  # the custom-VJP conv the families train with
            return ops.conv2d(x, w, self.stride[0], self.padding[0][0])
        return lax.conv_general_dilated(
            x,
            w,
            self.stride,
            self.padding,
            rhs_dilation=self.dilation,
            dimension_numbers=_CONV_DIMS[self.dims],
            feature_group_count=self.groups,
        )

    def _apply(self, x: jax.Array, w: jax.Array) -> jax.Array:
        # Only static attributes here: online, ops.trace_gradient takes this function as a constant.
        return x @ w if self.dims == 0 else time_map(lambda step: self._conv(step, w), x, fold=self.time_fold)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = super().__call__(x)
        if self.gain is not None:
            y = y * self.gain[...].astype(y.dtype)
        return y if self.shift is None else y + self.shift[...].astype(y.dtype)


class GraphNeuron(nnx.Module):
    """``LIF(x * gain + offset)`` with NIR's per-neuron constants folded into ``gain``/``offset`` (None: 1, 0).

    ``recurrent``, a ``(kernel, binary)`` pair with ``kernel`` ``[F, F]`` channel-last (the gain already
    folded into its columns), makes the neuron an ``nn.RecurrentLIF`` (a NIR cycle LIF -> Linear -> LIF):
    ``H[t] = tau U[t-1] + x[t] * gain + offset + V_b S[t-1]``, ``V_b = binarize(kernel)`` (AGMM Eq. 5) if
    ``binary``, which for a ``+-g`` column is the column itself. ``binary`` says whether V is a binary layer.
    """

    def __init__(self, lif: dict, gain=None, offset=None, recurrent=None):
        if recurrent is None:
            self.lif, self.binary = TracingLIF(**lif), False
        else:
            kernel, self.binary = recurrent
            self.lif = RecurrentLIF(kernel.shape[0], binary=self.binary, rngs=nnx.Rngs(0), **lif)
            self.lif.recurrent.kernel[...] = jnp.asarray(kernel, jnp.float32)
        self.gain = None if gain is None else FixedMap(jnp.asarray(gain, jnp.float32))
        self.offset = None if offset is None else FixedMap(jnp.asarray(offset, jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.gain is not None:
            x = x * self.gain[...]
        if self.offset is not None:
            x = x + self.offset[...]
        return self.lif(x)


class Threshold(nnx.Module):
    """NIR Threshold, ``z = 1[x > theta]`` (strict), with the triangle surrogate of AGMM Eq. 7 for training."""

    def __init__(self, theta):
        theta = np.asarray(theta, np.float32)
        self.theta = FixedMap(jnp.asarray(np.nextafter(theta, np.float32(np.inf))))  # x > t  <=>  x >= nextafter(t)

    def __call__(self, x: jax.Array) -> jax.Array:
        return ops.spike(x, self.theta[...])


class Scale(nnx.Module):
    """NIR Scale: ``x * s`` per neuron."""

    def __init__(self, scale):
        self.scale = FixedMap(jnp.asarray(scale, jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        return x * self.scale[...]


class Pool(nnx.Module):
    """NIR SumPool2d (``average=False``) or AvgPool2d (the sum over the window divided by its size)."""

    def __init__(self, kernel, stride, padding, *, average: bool):
        self.kernel, self.stride = tuple(int(k) for k in kernel), tuple(int(s) for s in stride)
        self.padding, self.average = tuple((int(p), int(p)) for p in padding), average
        self.time_fold = default_time_fold()

    def _pool(self, x: jax.Array) -> jax.Array:
        window, strides = (1, *self.kernel, 1), (1, *self.stride, 1)
        y = lax.reduce_window(x, 0.0, lax.add, window, strides, ((0, 0), *self.padding, (0, 0)))
        return y / math.prod(self.kernel) if self.average else y

    def __call__(self, x: jax.Array) -> jax.Array:
        return time_map(self._pool, x, fold=self.time_fold)


class Flatten(nnx.Module):
    """``[T, B, ..., C] -> [T, B, F]`` in NIR's channel-first order (C, then the spatial axes)."""

    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim > 3:
            x = jnp.moveaxis(x, -1, 2)
        return x.reshape(x.shape[:2] + (-1,))


class GraphNet(SpikingNet):
    """An imported NIR graph: ``[T, B, *input_shape]`` (or a static ``[B, *input_shape]``, the same input
    at every step) -> the Output node's value ``[T, B, K]``, like the families' ``__call__``.

    ``nodes[i]`` reads the sum of ``sources[i]`` (node indices, -1 the graph input); the output is
    the sum of ``output_sources``. ``names`` are the NIR node names.
    """

    def __init__(self, nodes, sources, output_sources, names, *, input_shape, timesteps: int, variant: str, name: str = "nir"):
        self._init_net(name, input_shape, NetOptions(VARIANTS[variant], timesteps, time_fold=default_time_fold()))
        self.nodes = nnx.List(nodes)
        self.sources, self.output_sources, self.names = tuple(map(tuple, sources)), tuple(output_sources), tuple(names)

    def node(self, name: str) -> nnx.Module:
        """The module of the NIR node ``name``."""
        return self.nodes[self.names.index(name)]

    def binary_nodes(self) -> list[str]:
        """The names of the nodes held as binary layers (+-1 kernel and a gain, or a neuron with a binary recurrent V),
        what BSO/T-BSO flip."""
        return [n for n, m in zip(self.names, self.nodes, strict=True) if getattr(m, "binary", False)]

    def __call__(self, x: jax.Array) -> jax.Array:
        steps = 1 if self.online else self.timesteps
        check_input(x, self.input_shape, steps, self.name)
        if x.ndim == len(self.input_shape) + 1:
            x = jnp.broadcast_to(x[None], (steps, *x.shape))
        values = []
        read = lambda sources: sum(x if s < 0 else values[s] for s in sources)  # noqa: E731
        for node, sources in zip(self.nodes, self.sources, strict=True):
            values.append(node(read(sources)))
        return read(self.output_sources)
