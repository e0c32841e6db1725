"""Flax NNX layers of binary spiking networks: thin shells over ``bsnn_jax.ops``.

Every layer takes time-major input ``[T, B, ...]``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax
from jax.ad_checkpoint import checkpoint_name

from bsnn_jax import ops
from bsnn_jax.nn.time import default_time_fold, time_map
from bsnn_jax.ops.lif import MEMBRANE_KEPT_EVERY, check_reset
from bsnn_jax.ops.spike import check_surrogate

CONV_OUTPUT = "synaptic_output"  # checkpoint name of every synaptic layer's output (remat policies)

# PyTorch's kaiming_normal_(mode="fan_out"), used by the Q-SNN and BSO code for every conv.
kaiming_fan_out = jax.nn.initializers.variance_scaling(2.0, "fan_out", "normal")


class BinaryParam(nnx.Param):
    """A kernel used through ``sign`` (1 bit per weight once deployed).

    Its own Variable type lets the size report count it at 1 bit, optimizers route it
    (``optax.partition``), the flip-ratio metric find it and the exporter bit-pack it.
    """


class Membrane(nnx.Variable):
    """A LIF layer's membrane potential, carried from one online time step to the next."""


class Trace(nnx.Variable):
    """A synaptic layer's presynaptic trace a_hat, carried from one online time step to the next."""


def floating_dtype_name(name: str) -> str:
    """The canonical name of a floating dtype (``"bfloat16"``, ``"float32"``), or a clear error."""
    try:
        dtype = jnp.dtype(name)
    except TypeError:
        dtype = None
    if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"compute_dtype must name a floating dtype such as 'bfloat16' or 'float32', got {name!r}")
    return dtype.name


class SynapticLayer(nnx.Module):
    """Weights applied to a layer's input: the kernel (binary or full precision) and bias.

    ``spike_input`` says whether the input is spikes (possibly average-pooled): such a layer
    costs accumulates (SOPs), one with real-valued input multiply-accumulates (MACs).
    ``binarizable`` marks the layers the binary variants binarize (default: ``binary``), so the
    flip ratio of AGMM Eq. 8 looks at the same layers in the full-precision variant too.

    Modes, set on a view of the model (``nn.modes``, through ``nnx.view``):

    - ``record=True`` (``nn.recording``, used by ``bsnn_jax.metrics`` under ``nnx.capture``): each
      call sows the mean of its input and its MACs per sample and time step.
    - ``latent_free=True`` (``nn.latent_free``): a binary kernel is used as stored, +-1, with no
      scale and no straight-through estimator.
    - ``online=True`` (``nn.online``): a spike-input layer keeps the presynaptic trace of its
      input across calls and takes its weight gradient from it (``ops.trace_gradient``).

    ``compute_dtype`` (e.g. ``"bfloat16"``) runs the linear map, forward and backward, in that
    precision: input and weight are cast to it, the output is cast back to the input's dtype, so
    parameters, BatchNorm, AGMM and the LIF membrane stay float32 (mixed precision, as Flax's
    ``dtype`` / ``param_dtype``). Spikes and +-1 kernels are exact in bfloat16.

    ``detach_scale=True`` stops the gradient through a binary kernel's scale gamma (AGMM Eq. 5,
    ``ops.binarize``), as the Q-SNN code: ``dL/dW = gamma 1_{|W|<=1} dL/dW_b`` only.

    Subclasses define ``_apply(x, w)``, the layer's linear map of a ``[T, B, ...]`` input.
    """

    def _init_weights(self, shape, init, *, binary, use_bias, spike_input, binarizable, compute_dtype, detach_scale, rngs):
        self.compute_dtype = None if compute_dtype is None else floating_dtype_name(compute_dtype)
        self.binary, self.spike_input, self.record = binary, spike_input, False
        self.online, self.trace_decay, self.trace, self.trace_kind = False, 0.5, nnx.data(None), "constant"
        self.latent_free, self.detach_scale = False, detach_scale
        self.binarizable = binary if binarizable is None else binarizable
        self.kernel = (BinaryParam if binary else nnx.Param)(init(rngs.params(), shape))
        self.bias = nnx.Param(jnp.zeros(shape[-1:])) if use_bias else None

    def set_view(
        self,
        latent_free: bool | None = None,
        online: bool | None = None,
        trace_decay: float | None = None,
        trace: str | None = None,
        record: bool | None = None,
    ):
        """The layer's modes, set by ``nnx.view`` (see ``nn.modes``); ``None`` keeps a mode as it is."""
        if latent_free is not None:
            self.latent_free = latent_free and self.binary
        if online is not None:
            self.online = online
        if trace_decay is not None:
            self.trace_decay = trace_decay
        if trace is not None:
            self.trace_kind = trace
        if record is not None:
            self.record = record

    def weight(self, dtype) -> jax.Array:
        """The kernel as used in the forward pass: ``binarize(kernel)`` (AGMM Eq. 5), or the kernel
        itself for a full-precision layer and for a latent-free binary one (``latent_free=True``,
        set by ``nn.latent_free``: its kernel already is +-1 and its gradient is the plain
        ``dL/dW`` the BSO rules expect, as the BSO code's ``QuantConv2d``)."""
        w = self.kernel[...]
        return (ops.binarize(w, self.detach_scale) if self.binary and not self.latent_free else w).astype(dtype)

    def __call__(self, x: jax.Array) -> jax.Array:
        dtype = x.dtype if self.compute_dtype is None else jnp.dtype(self.compute_dtype)
        w = self.weight(dtype)
        if self.online and self.spike_input:
            x, trace = self._online_trace(x)
            y = ops.trace_gradient(self._apply, x.astype(dtype), trace.astype(dtype), w)
        else:
            y = self._apply(x.astype(dtype), w)
        y = checkpoint_name(y.astype(x.dtype), CONV_OUTPUT)
        if self.bias is not None:
            y = y + self.bias[...].astype(y.dtype)
        if self.record:
            fan_in = math.prod(self.kernel.shape[:-1])
            self.sow(nnx.Intermediate, "input_rate", jnp.mean(x.astype(jnp.float32)))
            self.sow(nnx.Intermediate, "macs_per_step", jnp.asarray(math.prod(y.shape[2:]) * fan_in, jnp.float32))
        return y

    def _online_trace(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(spikes, presynaptic trace)`` of one online step's input.

        ``trace="constant"`` (OTTT): the layer keeps ``a_hat = lambda a_hat + x`` itself.
        ``trace="adaptive"`` (the BSO code): the decay is per presynaptic neuron, so the LIF that
        fires computes the trace (``nn.TracingLIF``) and sends it stacked after its spikes on
        the time axis; pooling on the way acts on both, as the code's ``[spike; rate]`` batch.
        """
        if self.trace_kind == "constant":
            previous = None if self.trace is None else self.trace[...]
            trace = ops.presynaptic_trace(previous, x, self.trace_decay)
            self.trace = Trace(trace)
            return x, trace
        if x.shape[0] != 2:
            raise ValueError(
                f"an adaptive trace reaches a synaptic layer stacked after the spikes ([2, B, ...]), got shape {x.shape}: "
                "build the model's neurons as nn.TracingLIF (models.create does) or use train.trace='constant'"
            )
        return x[:1], x[1:]


class BinaryConv(SynapticLayer):
    """2-D convolution whose kernel is binarized per output channel (AGMM Eq. 2 and 5).

    ``binary=False`` gives the full-precision conv of the same shape (first layer, FP-SNN,
    downsample shortcuts). Padding is symmetric ``kernel_size // 2``, as PyTorch's
    ``padding=1`` for 3x3, so stride-2 layers match the reference code.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int = 3,
        strides: int = 1,
        *,
        binary: bool = True,
        spike_input: bool = True,
        binarizable: bool | None = None,
        use_bias: bool = False,
        time_fold: bool | None = None,
        compute_dtype: str | None = None,
        detach_scale: bool = False,
        rngs: nnx.Rngs,
    ):
        self.strides = strides
        self.padding = kernel_size // 2
        self.time_fold = default_time_fold() if time_fold is None else time_fold
        shape = (kernel_size, kernel_size, in_features, out_features)
        self._init_weights(
            shape,
            kaiming_fan_out,
            binary=binary,
            use_bias=use_bias,
            spike_input=spike_input,
            binarizable=binarizable,
            compute_dtype=compute_dtype,
            detach_scale=detach_scale,
            rngs=rngs,
        )

    def conv(self, x: jax.Array, w: jax.Array) -> jax.Array:
        """The convolution of one time step, ``[B, H, W, C_in] -> [B, H', W', C_out]``, no bias."""
        return ops.conv2d(x, w, self.strides, self.padding)

    def _apply(self, x: jax.Array, w: jax.Array) -> jax.Array:
        return time_map(lambda step: self.conv(step, w), x, fold=self.time_fold)


class BinaryConv1d(SynapticLayer):
    """1-D convolution ``[T, B, L, C_in] -> [T, B, L, C_out]`` (stride 1, padding ``kernel_size // 2``),
    binarized per output channel (AGMM Eq. 2 and 5) unless ``binary=False``; kernel ``[k, C_in, C_out]``."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kernel_size: int = 3,
        *,
        binary: bool = True,
        spike_input: bool = True,
        binarizable: bool | None = None,
        time_fold: bool | None = None,
        compute_dtype: str | None = None,
        detach_scale: bool = False,
        rngs: nnx.Rngs,
    ):
        self.padding = kernel_size // 2
        self.time_fold = default_time_fold() if time_fold is None else time_fold
        self._init_weights(
            (kernel_size, in_features, out_features),
            kaiming_fan_out,
            binary=binary,
            use_bias=False,
            spike_input=spike_input,
            binarizable=binarizable,
            compute_dtype=compute_dtype,
            detach_scale=detach_scale,
            rngs=rngs,
        )

    def _apply(self, x: jax.Array, w: jax.Array) -> jax.Array:
        return time_map(lambda step: ops.conv1d(step, w, self.padding), x, fold=self.time_fold)


class BinaryLinear(SynapticLayer):
    """Dense layer ``[T, B, F_in] -> [T, B, F_out]``, binarized per output unit unless ``binary=False``.

    A matmul treats ``[T, B]`` as batch axes already, so there is nothing to fold.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        binary: bool = False,
        spike_input: bool = True,
        binarizable: bool | None = None,
        use_bias: bool = True,
        compute_dtype: str | None = None,
        kernel_init=None,
        detach_scale: bool = False,
        rngs: nnx.Rngs,
    ):
        self._init_weights(
            (in_features, out_features),
            kernel_init or nnx.initializers.lecun_normal(),
            binary=binary,
            use_bias=use_bias,
            spike_input=spike_input,
            binarizable=binarizable,
            compute_dtype=compute_dtype,
            detach_scale=detach_scale,
            rngs=rngs,
        )

    def _apply(self, x: jax.Array, w: jax.Array) -> jax.Array:
        return x @ w


class BatchNorm(nnx.BatchNorm):
    """BatchNorm over the last (channel) axis with statistics over every other axis.

    On a time-major ``[T, B, H, W, C]`` tensor that is time and batch together, as the reference
    code's BN on the flattened ``T*B`` batch; on ``[1, B, ...]`` it is per time step (online
    training). ``momentum=0.9`` matches PyTorch's default 0.1 update rate.

    Training mode normalises with ``ops.batch_norm``, whose backward keeps only its input and
    per-channel statistics (one activation instead of autodiff's two): the same outputs, running statistics and
    gradients as Flax's BatchNorm (its ``use_fast_variance`` statistics). Options that function
    does not cover (a ``mask``, ``axis_name``, another ``axis``, no scale or bias, exact variance)
    fall back to Flax's own computation.
    """

    def __init__(self, num_features: int, *, momentum: float = 0.9, rngs: nnx.Rngs, **kwargs):
        super().__init__(num_features, momentum=momentum, rngs=rngs, **kwargs)

    def __call__(self, x: jax.Array, use_running_average: bool | None = None, *, mask: jax.Array | None = None) -> jax.Array:
        running = self.use_running_average if use_running_average is None else use_running_average
        plain = self.axis in (-1, x.ndim - 1) and self.use_fast_variance and self.axis_name is None and self.dtype is None
        if running is not False or mask is not None or not plain or self.scale is None or self.bias is None:
            return super().__call__(x, use_running_average, mask=mask)
        y, mean, var = ops.batch_norm(x, self.scale[...], self.bias[...], self.epsilon)
        m = self.momentum
        self.mean[...] = lax.stop_gradient(m * self.mean[...] + (1 - m) * mean)
        self.var[...] = lax.stop_gradient(m * self.var[...] + (1 - m) * var)
        return y


class LIF(nnx.Module):
    """A layer of LIF neurons, AGMM Eq. 1-4, scanned over time (``ops.lif_scan``).

    Holds no state between calls: the membrane starts at zero every forward. In online mode
    (``online=True``, set by ``nn.online``) it keeps its last membrane as a ``Membrane`` variable
    and starts the next call from it; the online step passes that state in as a constant, so
    no gradient flows through time.

    ``fused``, ``save_dtype`` and ``membrane_kept_every`` choose how BPTT's backward is computed
    and what it keeps (``ops.lif_scan``): not what the layer computes.
    """

    def __init__(
        self,
        *,
        tau: float = 0.5,
        v_th: float = 1.0,
        reset: str = "hard",
        detach_reset: bool = False,
        surrogate: str = "triangle",
        beta: float = 1.0,
        unroll: int | bool = True,
        fused: bool = False,
        save_dtype: str | None = None,
        membrane_kept_every: int = MEMBRANE_KEPT_EVERY,
    ):
        check_surrogate(surrogate)
        check_reset(reset)
        self.tau, self.v_th, self.reset, self.detach_reset = tau, v_th, reset, detach_reset
        self.surrogate, self.beta, self.unroll = surrogate, beta, unroll
        self.fused, self.save_dtype, self.membrane_kept_every = fused, save_dtype, membrane_kept_every
        self.online, self.membrane = False, nnx.data(None)

    def set_view(self, online: bool | None = None):
        """Online mode (``nn.online``): continue from the membrane the last call left."""
        if online is not None:
            self.online = online

    def __call__(self, x: jax.Array) -> jax.Array:
        u0 = self.membrane[...] if self.online and self.membrane is not None else None
        spikes, u = ops.lif_scan(
            x,
            self.tau,
            self.v_th,
            reset=self.reset,
            detach_reset=self.detach_reset,
            surrogate=self.surrogate,
            beta=self.beta,
            unroll=self.unroll,
            fused=self.fused,
            save_dtype=self.save_dtype,
            membrane_kept_every=self.membrane_kept_every,
            u0=u0,
            return_membrane=True,
        )
        if self.online:
            self.membrane = Membrane(u)
        return spikes


class AGMM(nnx.Module):
    """AGMM Eq. 11 with a trainable temporal factor alpha: one scalar per time step, init 1.0.

    Online, where the input is one time step, ``time_index`` (an int or a traced scalar, set by
    ``nn.online``) says which alpha[t] applies.
    """

    def set_view(self, online: bool | None = None, t=None):
        """Online mode (``nn.online``): the next call is time step ``t``."""
        if online is not None:
            self.time_index = t if online else None

    def __init__(self, timesteps: int, *, alpha_init: float = 1.0):
        if timesteps < 1:
            raise ValueError(f"AGMM needs timesteps >= 1, got {timesteps}")
        self.alpha = nnx.Param(jnp.full((timesteps,), alpha_init, jnp.float32))
        self.time_index = None

    def __call__(self, x: jax.Array) -> jax.Array:
        t = self.alpha.shape[0]
        if self.time_index is not None:
            return ops.agmm(x, lax.dynamic_slice_in_dim(self.alpha[...], self.time_index, x.shape[0]))
        if x.shape[0] != t:
            raise ValueError(
                f"AGMM was built for T={t} time steps but got input with T={x.shape[0]} (shape {x.shape}); "
                "build the model with timesteps matching the data"
            )
        return ops.agmm(x, self.alpha[...])


def pool(x: jax.Array, window: int, *, stride: int | None = None, padding: int = 0, kind: str = "avg", fold: bool) -> jax.Array:
    """Average or max pooling of every time step of ``[T, B, H, W, C]``; stride defaults to the window."""
    ops_by_kind = {"avg": nnx.avg_pool, "max": nnx.max_pool}
    if kind not in ops_by_kind:
        raise ValueError(f"unknown pooling {kind!r}; known: {sorted(ops_by_kind)}")
    stride = stride or window
    pad = ((padding, padding), (padding, padding))
    return time_map(lambda z: ops_by_kind[kind](z, (window, window), strides=(stride, stride), padding=pad), x, fold=fold)
