"""Pieces shared by every network family: variants, the BConv-BN-AGMM unit, input handling."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from bsnn_jax import ops
from bsnn_jax.nn import AGMM, LIF, BatchNorm, BinaryConv, BinaryConv1d, BinaryLinear, TracingLIF
from bsnn_jax.nn.layers import CONV_OUTPUT
from bsnn_jax.ops import encode


class ModelInputError(ValueError):
    """Input a model cannot take (shape, frame size, time steps); the message says what fits."""


@dataclasses.dataclass(frozen=True)
class Variant:
    """What the ablation compares: full-precision SNN, vanilla BSNN, and BSNN with AGMM."""

    name: str
    binary: bool
    agmm: bool


VARIANTS = {
    "fp": Variant("fp", binary=False, agmm=False),
    "bsnn": Variant("bsnn", binary=True, agmm=False),
    "agmm": Variant("agmm", binary=True, agmm=True),
}


# What a model's input becomes before its stem (``encode_input``): direct current injection, or
# spikes: rate (Bernoulli draws, fresh every batch), latency (time to first spike) of a static
# input, delta (threshold crossings) of a sequence.
MODEL_ENCODERS = ("direct", "rate", "latency", "delta")

REMAT_POLICIES = {
    # keep only each block's input; recompute its conv, BN, AGMM and LIF (least memory)
    "block": jax.checkpoint_policies.nothing_saveable,
    # keep each block's conv outputs; recompute the elementwise rest (BN, AGMM, LIF)
    "conv": jax.checkpoint_policies.save_only_these_names(CONV_OUTPUT),
}
# "auto" (the default) recomputes as "conv" in deep networks over long windows and not otherwise.
# Measured on XLA:CPU (benchmarks/results/bptt_memory.md, section 8): with >= 5 recomputable
# layers or blocks (VGG-11, VGGSNN, ResNet-19) "conv" keeps 30-50% less at T = 16, grows 2x per
# doubling of T instead of up to 2.6x, and VGG-11's step is faster from T = 8 on; at T <= 4 it saved
# memory but not time. In a 3-layer net (the benchmark's reference net) one layer's backward
# dominates the peak and recomputing it costs memory and time.
REMAT_CHOICES = (*REMAT_POLICIES, "auto", "none")  # "none" (the command line's spelling) = None
AUTO_REMAT_MIN_TIMESTEPS = 8
AUTO_REMAT_MIN_LAYERS = 5


@dataclasses.dataclass(frozen=True)
class NetOptions:
    """Options every layer of a network shares.

    ``neuron`` holds keyword arguments of ``nn.LIF`` (tau, v_th, reset, detach_reset, surrogate,
    beta, unroll); ``time_fold`` chooses how stateless layers run over time (``nn.time_map``);
    ``compute_dtype`` is the precision of the convolutions (``nn.SynapticLayer``), None for the input's;
    ``remat`` recomputes each layer or block in the backward pass (``REMAT_CHOICES``, ``remat_call``);
    ``encoder`` turns the input into the T-step stream the stem reads (``MODEL_ENCODERS``, ``encode_input``),
    ``encoder_threshold`` is the delta encoder's step (or the latency encoder's silence level),
    ``encoder_key`` the rate encoder's first random key (``jax.random.key``; ``models.create`` draws it from its rngs);
    ``detach_scale`` stops the gradient through the binary kernels' scale gamma (``ops.binarize``).
    """

    variant: Variant
    timesteps: int
    time_fold: bool
    compute_dtype: str | None = None
    remat: str | None = "auto"
    neuron: dict[str, Any] = dataclasses.field(default_factory=dict)
    encoder: str = "direct"
    encoder_threshold: float = 0.1
    detach_scale: bool = False
    encoder_key: jax.Array | None = None

    def __post_init__(self):
        if self.remat is not None and self.remat not in REMAT_CHOICES:
            raise ValueError(f"unknown remat policy {self.remat!r}; known: {sorted(REMAT_CHOICES)} or None")
        if self.encoder == "rate" and self.encoder_key is None:
            raise ValueError("encoder 'rate' draws random spikes: give NetOptions an encoder_key=jax.random.key(seed) (models.create does)")
        if self.encoder not in MODEL_ENCODERS:
            raise ValueError(f"unknown encoder {self.encoder!r}; known: {list(MODEL_ENCODERS)}")

    def remat_for(self, layers: int) -> str | None:
        """The ``remat`` of a network with ``layers`` recomputable layers or blocks: "auto"
        stays "auto" (decided per call by ``remat_call``) from ``AUTO_REMAT_MIN_LAYERS`` on and is
        None below; "none" is None; any other choice is kept."""
        if self.remat == "auto":
            return "auto" if layers >= AUTO_REMAT_MIN_LAYERS else None
        return None if self.remat == "none" else self.remat

    def lif(self) -> LIF:
        # TracingLIF is nn.LIF except online with the BSO code's adaptive trace (train.trace).
        return TracingLIF(**self.neuron)


def remat_call(remat: str | None, fn, *args):
    """``fn(*modules, x)`` for ``args = (*modules, x)``, x time-major ``[T, ...]``; with ``remat`` (a
    ``REMAT_POLICIES`` key, or "auto": "conv" when T >= ``AUTO_REMAT_MIN_TIMESTEPS``) under
    ``ops.remat``, so BPTT's backward pass recomputes what the policy does not keep instead of
    holding it for all T steps (``nnx.remat``'s barriers are dropped by XLA:CPU). Online steps
    (T = 1) never recompute under "auto"."""
    *modules, x = args
    if remat == "auto":
        remat = "conv" if x.shape[0] >= AUTO_REMAT_MIN_TIMESTEPS else None
    if remat is None:
        return fn(*args)
    graphdef, state = nnx.split(tuple(modules))

    def pure(state, x):
        merged = nnx.merge(graphdef, state)
        return fn(*merged, x), nnx.state(merged)

    y, state = ops.remat(pure, REMAT_POLICIES[remat])(state, x)
    nnx.update(tuple(modules), state)
    return y


class NormalizedUnit(nnx.Module):
    """What every unit does after its synaptic layer: ``X = BN(.)``, then ``AGMM(X)`` in the AGMM
    variant after a binary layer (the paper places AGMM after every BConv-BN, AGMM Fig. 3b)."""

    def _init_norm(self, features: int, binary: bool, opts: NetOptions, rngs: nnx.Rngs) -> None:
        self.bn = BatchNorm(features, rngs=rngs)
        self.agmm = AGMM(opts.timesteps) if binary and opts.variant.agmm else None

    def _normalize(self, x: jax.Array) -> jax.Array:
        x = self.bn(x)
        return x if self.agmm is None else self.agmm(x)


class ConvUnit(NormalizedUnit):
    """``X = BN(BConv(S))``, then ``AGMM(X)`` in the AGMM variant: the module of AGMM Fig. 3b.

    ``binarizable=True`` marks a conv reading spikes, binarized in the binary variants;
    ``binarizable=False`` one reading real values (first conv, downsample shortcuts), always full
    precision. AGMM follows only binary convs, since the paper places it after every BConv-BN.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        opts: NetOptions,
        *,
        kernel_size: int = 3,
        strides: int = 1,
        binarizable: bool = True,
        use_bias: bool = False,
        rngs: nnx.Rngs,
    ):
        self.conv = BinaryConv(
            in_features,
            out_features,
            kernel_size,
            strides,
            binary=binarizable and opts.variant.binary,
            spike_input=binarizable,
            binarizable=binarizable,
            use_bias=use_bias,
            time_fold=opts.time_fold,
            compute_dtype=opts.compute_dtype,
            detach_scale=opts.detach_scale,
            rngs=rngs,
        )
        self._init_norm(out_features, self.conv.binary, opts, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self._normalize(self.conv(x))


class Conv1dUnit(NormalizedUnit):
    """``X = BN(BConv1d(S))`` [``-> AGMM``]: :class:`ConvUnit` over one spatial axis (``[T, B, L, C]``)."""

    def __init__(self, in_features: int, out_features: int, opts: NetOptions, *, binarizable: bool = True, rngs: nnx.Rngs):
        self.conv = BinaryConv1d(
            in_features,
            out_features,
            3,
            binary=binarizable and opts.variant.binary,
            spike_input=binarizable,
            binarizable=binarizable,
            time_fold=opts.time_fold,
            compute_dtype=opts.compute_dtype,
            detach_scale=opts.detach_scale,
            rngs=rngs,
        )
        self._init_norm(out_features, self.conv.binary, opts, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self._normalize(self.conv(x))


class DenseUnit(NormalizedUnit):
    """``X = BN(S W)`` [``-> AGMM``]: the fully connected counterpart of :class:`ConvUnit` (``[T, B, F]``);
    ``binarizable=False`` for the first layer, which reads real-valued input."""

    def __init__(self, in_features: int, out_features: int, opts: NetOptions, *, binarizable: bool = True, rngs: nnx.Rngs):
        self.dense = BinaryLinear(
            in_features,
            out_features,
            binary=binarizable and opts.variant.binary,
            spike_input=binarizable,
            binarizable=binarizable,
            use_bias=False,
            compute_dtype=opts.compute_dtype,
            detach_scale=opts.detach_scale,
            rngs=rngs,
        )
        self._init_norm(out_features, self.dense.binary, opts, rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self._normalize(self.dense(x))


class EncoderKey(nnx.Variable):
    """The rate encoder's random key (raw ``jax.random.key_data``), split at every encoded call."""


class SpikingNet(nnx.Module):
    """What every network family shares: its input contract and the stem over time.

    ``online=True`` (set by ``nn.online``) makes each call one time step: ``[1, B, H, W, C]``
    frames, or a static image fed once.

    With ``encoder="rate"`` the model holds an :class:`EncoderKey` (model state beside the BatchNorm
    statistics) and splits it at every call: a training step, which keeps the model state it
    returns, draws new spikes from the next key, so a run is reproducible from its seed and resumes
    exactly from a checkpoint; an evaluation, which keeps nothing, draws every batch from the key
    the training left. The draws are over the global batch, so under a multi-host mesh each
    example's spikes depend on its place in the global batch (JAX's partitionable threefry), never
    on which host holds it.
    """

    def _init_net(self, name: str, input_shape, opts: NetOptions) -> None:
        self.name, self.input_shape, self.timesteps, self.online = name, tuple(input_shape), opts.timesteps, False
        self.encoder, self.encoder_threshold = opts.encoder, opts.encoder_threshold
        self.encoder_key = EncoderKey(jax.random.key_data(opts.encoder_key)) if opts.encoder == "rate" else None

    def set_view(self, online: bool | None = None):
        """Online mode (``nn.online``): each call is one time step."""
        if online is not None:
            self.online = online

    def run_stem(self, stem, x: jax.Array) -> jax.Array:
        """Checks ``x`` and runs the full-precision stem over time (``apply_stem``)."""
        steps = 1 if self.online else self.timesteps
        check_input(x, self.input_shape, steps, self.name)
        static = x.ndim == len(self.input_shape) + 1
        if self.encoder != "direct":
            if self.online:
                raise ModelInputError(
                    f"{self.name}: encoder {self.encoder!r} needs all T steps of the input; train it with train.mode=bptt"
                )
            x, static = encode_input(self.encoder, x, self.timesteps, static, self.encoder_threshold, key=self._next_key()), False
        return apply_stem(stem, x, steps, static=static)

    def _next_key(self) -> jax.Array | None:
        if self.encoder_key is None:
            return None
        key, draw = jax.random.split(jax.random.wrap_key_data(self.encoder_key[...]))
        self.encoder_key[...] = jax.random.key_data(key)
        return draw


def encode_input(encoder: str, x: jax.Array, timesteps: int, static: bool, threshold: float, *, key: jax.Array | None = None) -> jax.Array:
    """The spikes the stem reads: a static input's rate code (``ops.encode.rate``, T Bernoulli draws
    of ``p = clip(x, 0, 1)``) or latency code (``ops.encode.latency``), a ``[T, B, ...]`` sequence's
    rate code (one draw per step of that step's value) or delta code (``ops.encode.delta``:
    threshold crossings over time, signed counts)."""
    if encoder == "rate":
        return encode.rate(key, x, timesteps) if static else encode.rate(key, x, 1)[0]
    if encoder == "latency":
        if not static:
            raise ModelInputError("encoder 'latency' codes static inputs (one first-spike time each); sequences take 'delta' or 'direct'")
        return encode.latency(x, timesteps, threshold=threshold)
    if static:
        raise ModelInputError("encoder 'delta' codes how a sequence changes over time; static inputs take 'rate', 'latency' or 'direct'")
    return encode.delta(x, threshold)


def check_input(x: jax.Array, input_shape: tuple[int, ...], timesteps: int, model: str) -> None:
    """Raises a clear error unless ``x`` is ``[B, *input_shape]`` (static: images ``[B, H, W, C]``,
    signals ``[B, L, C]``) or ``[T, B, *input_shape]`` (events, sequences)."""
    x_shape, n = tuple(x.shape), len(input_shape)
    if x.ndim not in (n + 1, n + 2) or x_shape[-n:] != tuple(input_shape):
        dims = ", ".join(map(str, input_shape))
        hint = (
            "rebuild it with input_shape=(H, W, C) of your data or transpose NCHW data to NHWC"
            if n == 3
            else "rebuild it with input_shape= the shape of one example of your data"
        )
        raise ModelInputError(
            f"{model} was built for inputs [T, B, {dims}] (time-major) or static inputs [B, {dims}], got shape {x_shape}; {hint}"
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{model} expects floating-point input, got {x.dtype}; convert and normalise images first")
    if x.ndim == n + 2 and x.shape[0] != timesteps:
        raise ModelInputError(
            f"{model} was built for T={timesteps} time steps, got input with T={x.shape[0]}; "
            f"build it with timesteps={x.shape[0]} (--config.model.timesteps={x.shape[0]})"
        )


def apply_stem(stem, x: jax.Array, timesteps: int, *, static: bool) -> jax.Array:
    """Runs the full-precision stem over time.

    A static input (an image ``[B, H, W, C]``, a signal) is the same input current at every time
    step (direct encoding, the input repeated T times), so the stem's layer and BN run once and the
    result is broadcast over T: BN statistics of T identical copies equal those of one. An input
    stream ``[T, B, ...]`` (DVS frames, sequences fed one row per step) runs through the stem step by step.
    """
    if static:
        y = stem(x[None])
        return jnp.broadcast_to(y, (timesteps,) + y.shape[1:])
    return stem(x)
