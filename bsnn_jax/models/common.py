"""Pieces shared by every network family: variants, the BConv-BN-AGMM unit, input handling."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from bsnn_jax.nn import AGMM, LIF, BatchNorm, BinaryConv, TracingLIF
from bsnn_jax.nn.layers import CONV_OUTPUT


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


REMAT_POLICIES = {
    # keep only each block's input; recompute its conv, BN, AGMM and LIF (least memory)
    "block": jax.checkpoint_policies.nothing_saveable,
    # keep each block's conv outputs; recompute the elementwise rest (BN, AGMM, LIF)
    "conv": jax.checkpoint_policies.save_only_these_names(CONV_OUTPUT),
}


@dataclasses.dataclass(frozen=True)
class NetOptions:
    """Options every layer of a network shares.

    ``neuron`` holds keyword arguments of ``nn.LIF`` (tau, v_th, reset, detach_reset, surrogate,
    beta, unroll); ``time_fold`` chooses how stateless layers run over time (``nn.time_map``);
    ``compute_dtype`` is the precision of the convolutions (``nn.SynapticLayer``), None for the input's;
    ``remat`` recomputes each layer or block in the backward pass (``REMAT_POLICIES``, ``remat_call``).
    """

    variant: Variant
    timesteps: int
    time_fold: bool
    compute_dtype: str | None = None
    remat: str | None = None
    neuron: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.remat is not None and self.remat not in REMAT_POLICIES:
            raise ValueError(f"unknown remat policy {self.remat!r}; known: {sorted(REMAT_POLICIES)} or None")

    def lif(self) -> LIF:
        # TracingLIF is nn.LIF except online with the BSO code's adaptive trace (train.trace).
        return TracingLIF(**self.neuron)


def remat_call(remat: str | None, fn, *args):
    """``fn(*args)``; with ``remat`` (a ``REMAT_POLICIES`` key) under ``nnx.remat``, so BPTT's
    backward pass recomputes what the policy does not keep instead of holding it for all T steps."""
    if remat is None:
        return fn(*args)
    return nnx.remat(fn, policy=REMAT_POLICIES[remat], graph=True, graph_updates=True)(*args)


class ConvUnit(nnx.Module):
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
            rngs=rngs,
        )
        self.bn = BatchNorm(out_features, rngs=rngs)
        self.agmm = AGMM(opts.timesteps) if self.conv.binary and opts.variant.agmm else None

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.bn(self.conv(x))
        return x if self.agmm is None else self.agmm(x)


class SpikingNet(nnx.Module):
    """What every network family shares: its input contract and the stem over time.

    ``online=True`` (set by ``nn.online``) makes each call one time step: ``[1, B, H, W, C]``
    frames, or a static image fed once.
    """

    def _init_net(self, name: str, input_shape, timesteps: int) -> None:
        self.name, self.input_shape, self.timesteps, self.online = name, tuple(input_shape), timesteps, False

    def set_view(self, online: bool | None = None):
        """Online mode (``nn.online``): each call is one time step."""
        if online is not None:
            self.online = online

    def run_stem(self, stem: nnx.Module, x: jax.Array) -> jax.Array:
        """Checks ``x`` and runs the full-precision stem over time (``apply_stem``)."""
        steps = 1 if self.online else self.timesteps
        check_input(x, self.input_shape, steps, self.name)
        return apply_stem(stem, x, steps)


def check_input(x: jax.Array, input_shape: tuple[int, int, int], timesteps: int, model: str) -> None:
    """Raises a clear error unless ``x`` is ``[B, H, W, C]`` (static) or ``[T, B, H, W, C]`` (events)."""
    x_shape = tuple(x.shape)
    h, w, c = input_shape
    if x.ndim not in (4, 5) or x_shape[-3:] != (h, w, c):
        raise ModelInputError(
            f"{model} was built for inputs [T, B, {h}, {w}, {c}] (time-major) or static images "
            f"[B, {h}, {w}, {c}], got shape {x_shape}; rebuild it with input_shape=(H, W, C) of your data "
            "or transpose NCHW data to NHWC"
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{model} expects floating-point input, got {x.dtype}; convert and normalise images first")
    if x.ndim == 5 and x.shape[0] != timesteps:
        raise ModelInputError(f"{model} was built for T={timesteps} time steps, got input with T={x.shape[0]}")


def apply_stem(stem: nnx.Module, x: jax.Array, timesteps: int) -> jax.Array:
    """Runs the full-precision stem over time.

    A static image ``[B, H, W, C]`` is the same input current at every time step (direct
    encoding, the input repeated T times), so the stem's conv and BN run once and the result
    is broadcast over T: BN statistics of T identical copies equal those of one. An input
    stream ``[T, B, H, W, C]`` (DVS frames) runs through the stem step by step.
    """
    if x.ndim == 4:
        y = stem(x[None])
        return jnp.broadcast_to(y, (timesteps,) + y.shape[1:])
    return stem(x)
