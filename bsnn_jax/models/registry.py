"""One entry point for every network family: ``create(name, variant=..., ...)``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
from flax import nnx

from bsnn_jax.models.common import VARIANTS, NetOptions
from bsnn_jax.models.mlp import SpikingMLP
from bsnn_jax.models.resnet import BiRealResNet
from bsnn_jax.models.vgg import REFERENCE, SIGNAL, SMALL, VGG11, VGGSNN, SpikingVGG
from bsnn_jax.nn import default_time_fold


@dataclasses.dataclass(frozen=True)
class Family:
    build: Callable[..., nnx.Module]
    input_shape: tuple[int, ...]
    num_classes: int
    description: str


FAMILIES: dict[str, Family] = {
    "resnet19": Family(
        lambda stem="cifar", **kw: BiRealResNet([(128, 6, 1), (256, 6, 2), (512, 4, 2)], stem=stem, name="resnet19", **kw),
        (32, 32, 3),
        100,
        "Bi-Real ResNet-19 for CIFAR: 3x3 stem 128, 16 single-conv blocks at 128/256/512 (AGMM Table 1)",
    ),
    "resnet18": Family(
        # The 7x7/2 stem by default: the AGMM paper does not give ResNet-18's stem; its predecessor
        # Q-SNN's resnet18 (the same group) and torchvision use 7x7/2, and the BSO repository's
        # 3x3/1 Bi-Real stem ("bireal") costs 4x the operations at 224x224.
        lambda stem="imagenet", **kw: BiRealResNet([(64, 4, 1), (128, 4, 2), (256, 4, 2), (512, 4, 2)], stem=stem, name="resnet18", **kw),
        (224, 224, 3),
        1000,
        "Bi-Real ResNet-18 for ImageNet: 7x7/2 stem + maxpool, 16 single-conv blocks at 64-512",
    ),
    "vggsnn": Family(
        lambda **kw: SpikingVGG(VGGSNN, head="flatten", name="vggsnn", **kw),
        (48, 48, 2),
        10,
        "VGGSNN for DVS (TET): 8 convs 64-512, 4 avg-pools, FC on the flattened spike map",
    ),
    "vgg11": Family(
        # The BSO code initialises its classifier N(0, 0.01) (OnlineSpikingVGG._initialize_weights).
        lambda **kw: SpikingVGG(VGG11, head="gap", first_conv_bias=True, fc_init=nnx.initializers.normal(0.01), name="vgg11", **kw),
        (32, 32, 3),
        10,
        "VGG-11 of the BSO paper: 8 convs 64-512, 3 avg-pools, global average pool, FC",
    ),
    "small_cnn": Family(
        lambda **kw: SpikingVGG(SMALL, head="flatten", name="small_cnn", **kw),
        (28, 28, 1),
        10,
        "3-conv net (32-64-128) for the built-in Fashion-MNIST, FC on the flattened spike map",
    ),
    "reference": Family(
        lambda **kw: SpikingVGG(REFERENCE, head="gap", name="reference", **kw),
        (32, 32, 3),
        10,
        "the speed benchmark's net: convs 64-128-256-256, 2 avg-pools, global average pool, FC (bsnn bench)",
    ),
    "mlp": Family(
        lambda **kw: SpikingMLP((256, 256, 256), name="mlp", **kw),
        (1, 1, 28),
        10,
        "spiking MLP 256-256-256 on [T, B, F] sequences or static inputs (flattened), FC classifier",
    ),
    "conv1d": Family(
        lambda **kw: SpikingVGG(SIGNAL, head="gap", name="conv1d", dims=1, **kw),
        (64, 1, 1),
        10,
        "1-D convnet for signals [B, L, C] or sequences [T, B, L, C]: convs 32-64-128 (k=3), 2 avg-pools, GAP, FC",
    ),
}


STEM_FAMILIES = ("resnet18", "resnet19")
ENCODER_STREAM = 0x5EED  # folded into an integer seed: the rate encoder's key


def _encoder_key(rngs: nnx.Rngs | int) -> jax.Array:
    """The rate encoder's first key: from an integer seed a key of its own, so the parameters are
    those the same seed gives with any other encoder; from ``nnx.Rngs`` its ``encoder`` stream."""
    return jax.random.fold_in(jax.random.key(rngs), ENCODER_STREAM) if isinstance(rngs, int) else rngs.encoder()


RECURRENT_FAMILIES = ("mlp",)


def _check_choices(name: str, variant: str, timesteps: int) -> str:
    """``name``, once the family, variant and T are known to exist."""
    if name not in FAMILIES:
        raise ValueError(f"unknown model {name!r}; known: {sorted(FAMILIES)}")
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {sorted(VARIANTS)}")
    if timesteps < 1:
        raise ValueError(f"timesteps must be >= 1, got {timesteps}")
    return name


def _family_options(name: str, stem: str | None, recurrent: bool | tuple[bool, ...]) -> dict[str, Any]:
    """The keyword arguments only some families take (``stem``, ``recurrent``), refused elsewhere."""
    if stem is not None and name not in STEM_FAMILIES:
        raise ValueError(f"model {name!r} has no stem option (model.stem); only {', '.join(STEM_FAMILIES)} do")
    if recurrent is not False and name not in RECURRENT_FAMILIES:
        raise ValueError(f"model {name!r} has no recurrent option (model.recurrent); only {', '.join(RECURRENT_FAMILIES)} has")
    options: dict[str, Any] = {} if stem is None else {"stem": stem}
    if name in RECURRENT_FAMILIES:
        options["recurrent"] = recurrent
    return options


def create(
    name: str,
    *,
    variant: str = "agmm",
    num_classes: int | None = None,
    timesteps: int = 4,
    input_shape: tuple[int, ...] | None = None,
    time_fold: bool | None = None,
    compute_dtype: str | None = None,
    remat: str | None = "auto",
    neuron: dict[str, Any] | None = None,
    stem: str | None = None,
    encoder: str = "direct",
    encoder_threshold: float = 0.1,
    detach_scale: bool = False,
    recurrent: bool | tuple[bool, ...] = False,
    rngs: nnx.Rngs | int = 0,
) -> nnx.Module:
    """Builds a network family in one of the variants ``fp``, ``bsnn`` or ``agmm``.

    Args:
      name: one of ``FAMILIES``: resnet19, resnet18, vggsnn, vgg11, small_cnn, reference (images,
        ``[B, H, W, C]``), mlp (any example shape, flattened) and conv1d (signals ``(L, C)``).
      variant: ``fp`` (full-precision SNN), ``bsnn`` (vanilla binary), ``agmm`` (binary + AGMM).
      num_classes: classifier width; the family's usual dataset by default.
      timesteps: T; AGMM keeps one alpha per module per time step.
      input_shape: the shape of one example (one frame): ``(H, W, C)`` for images, ``(L, C)`` (or the
        data pipeline's ``(L, 1, C)``) for signals, ``(F,)`` or any shape for mlp; the family's usual
        dataset by default.
      time_fold: run stateless layers on ``[T*B, ...]`` (True) or per time step (False);
        by default per backend (``nn.default_time_fold``).
      compute_dtype: precision of the convolutions, e.g. ``"bfloat16"`` (mixed precision: the
        parameters, BatchNorm and the LIF membrane stay float32); None computes in the input's.
      remat: recompute each layer (VGG, MLP) or block (ResNet) in BPTT's backward pass to save memory
        (``ops.remat``): ``"block"`` keeps only its input, ``"conv"`` also its conv outputs
        (``REMAT_POLICIES``); ``"auto"`` is ``"conv"`` for calls over T >= 8 steps in networks of
        at least 5 such layers or blocks (VGG-11, VGGSNN, the ResNets) and None otherwise
        (``models.common.REMAT_CHOICES``); None never recomputes.
      neuron: keyword arguments of ``nn.LIF`` (tau, v_th, reset, surrogate, beta, ...).
      stem: the ResNets' stem, a key of ``resnet.STEMS`` (``"cifar"`` 3x3/1, ``"imagenet"``
        7x7/2 + max-pool, ``"bireal"`` 3x3/1 + max-pool); None: the family's (resnet18:
        ``"imagenet"``, resnet19: ``"cifar"``).
      encoder: what the input becomes before the first layer (``ops.encode``): ``direct`` (the real
        value injected as current at every step), ``rate`` (Bernoulli spikes with P = clip(x, 0, 1),
        drawn anew at every call from a key the model holds, ``SpikingNet``), ``latency`` (one spike per input at
        ``round((1 - x)(T - 1))``, static inputs) or ``delta`` (threshold crossings of a sequence).
      encoder_threshold: the delta encoder's step, or the level at or below which latency stays silent.
      detach_scale: stop the gradient through each binary kernel's scale gamma (AGMM Eq. 5 with
        ``stop_gradient(gamma)``, the Q-SNN code's choice; ``ops.binarize``): only the STE term
        ``gamma 1_{|W|<=1} dL/dW_b`` reaches the latent weights. No effect on the forward pass.
      recurrent: mlp only: recurrent connections ``V S[t-1]`` in every hidden layer (``True``) or in
        those flagged (one bool per hidden layer); see ``SpikingMLP``.
      rngs: ``nnx.Rngs`` or an integer seed.

    Returns:
      An NNX module mapping ``[T, B, *input_shape]`` (or static ``[B, *input_shape]``) to logits ``[T, B, K]``.
    """
    family = FAMILIES[_check_choices(name, variant, timesteps)]
    opts = NetOptions(
        variant=VARIANTS[variant],
        timesteps=timesteps,
        time_fold=default_time_fold() if time_fold is None else time_fold,
        compute_dtype=compute_dtype,
        remat=remat,
        neuron=dict(neuron or {}),
        encoder=encoder,
        encoder_threshold=encoder_threshold,
        detach_scale=detach_scale,
        encoder_key=_encoder_key(rngs) if encoder == "rate" else None,
    )
    rngs = nnx.Rngs(rngs) if isinstance(rngs, int) else rngs
    return family.build(
        **_family_options(name, stem, recurrent),
        input_shape=tuple(input_shape or family.input_shape),
        num_classes=num_classes or family.num_classes,
        opts=opts,
        rngs=rngs,
    )
