"""The optimizers a run can name, as optax transformations: the AGMM recipe (methods-spec 1.5),
the full-precision side of BSO (methods-spec 2.1) and the flip rules of the binary kernels.

SGD with momentum 0.9, a cosine-annealed learning rate after an optional linear warm-up, and
L2 weight decay (added to the gradient before momentum, as PyTorch's ``SGD(weight_decay=)``)
on conv/linear kernels only, latent binary kernels included, never on BatchNorm, biases or
AGMM's alpha (the Q-SNN code's ``split_weights``). Adam (L2 added to the gradient) and AdamW
(decoupled decay) use the same mask.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import optax
from flax import nnx

from bsnn_jax.nn import BinaryParam
from bsnn_jax.optim.flip import OneMinus, bop, bso, t_bso

OPTIMIZERS = ("sgd", "adam", "adamw")
FLIP_OPTIMIZERS = ("bop", "bso", "t_bso")
BINARY_TRAINING = ("latent",) + FLIP_OPTIMIZERS
SCHEDULES = ("cosine", "constant")


def make_schedule(
    name: str,
    *,
    learning_rate: float,
    total_steps: int,
    warmup_steps: int = 0,
    end_value: float = 0.0,
) -> optax.Schedule:
    """The learning rate per optimizer step.

    ``"cosine"``: ``lr * t / warmup`` for ``t < warmup``, then
    ``end + (lr - end) * (1 + cos(pi * (t - warmup) / (total - warmup))) / 2`` until ``total``,
    ``end`` after. This is PyTorch's ``CosineAnnealingLR(T_max=total, eta_min=end)`` evaluated
    every step rather than every epoch. ``"constant"``: ``lr`` after the same warm-up.
    """
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; known: {list(SCHEDULES)}")
    if total_steps < 1:
        raise ValueError(f"the schedule needs total_steps >= 1, got {total_steps}")
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(f"warmup_steps must be in [0, total_steps={total_steps}), got {warmup_steps}")
    if name == "constant":
        if warmup_steps == 0:
            return optax.constant_schedule(learning_rate)
        return optax.warmup_constant_schedule(0.0, learning_rate, warmup_steps)
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0 if warmup_steps else learning_rate,
        peak_value=learning_rate,
        warmup_steps=warmup_steps,
        decay_steps=total_steps,
        end_value=end_value,
    )


def decays(path: tuple[Any, ...], variable: nnx.Variable) -> bool:
    """Whether weight decay applies to a parameter: binary kernels and every ``kernel`` of a
    conv or linear layer do; BatchNorm scale/bias, biases and AGMM's alpha do not."""
    return isinstance(variable, BinaryParam) or (isinstance(variable, nnx.Param) and bool(path) and path[-1] == "kernel")


def weight_decay_mask(params: nnx.State, rule: Callable[[tuple[Any, ...], nnx.Variable], bool] = decays) -> nnx.State:
    """A pytree of booleans with the structure of ``nnx.as_pure(params)``: True where decay applies.

    Args:
      params: ``nnx.state(model, nnx.Param)`` (Variables, so their kinds are visible).
      rule: ``(path, variable) -> bool``; :func:`decays` by default.
    """
    return jax.tree_util.tree_map_with_path(
        lambda path, v: rule(tuple(getattr(k, "key", getattr(k, "idx", k)) for k in path), v),
        params,
        is_leaf=lambda x: isinstance(x, nnx.Variable),
    )


def make_optimizer(
    name: str,
    schedule: optax.Schedule | float,
    *,
    mask: Any = None,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    nesterov: bool = False,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    grad_clip_norm: float = 0.0,
) -> optax.GradientTransformation:
    """SGD / Adam / AdamW with masked weight decay and optional global-norm gradient clipping.

    ``sgd`` and ``adam`` add ``weight_decay * w`` to the gradient where ``mask`` is True (L2, as
    PyTorch); ``adamw`` decays the weights directly (decoupled, Loshchilov & Hutter).
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; known: {list(OPTIMIZERS)}")
    chain = []
    if grad_clip_norm and grad_clip_norm > 0:
        chain.append(optax.clip_by_global_norm(grad_clip_norm))
    if name == "adamw":
        chain.append(optax.adamw(schedule, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, mask=mask))
        return optax.chain(*chain)
    if weight_decay:
        chain.append(optax.add_decayed_weights(weight_decay, mask=mask))
    if name == "sgd":
        chain.append(optax.sgd(schedule, momentum=momentum or None, nesterov=nesterov))
    else:
        chain.append(optax.adam(schedule, b1=b1, b2=b2, eps=eps))
    return optax.chain(*chain)


def make_flip_optimizer(
    name: str,
    *,
    timesteps: int,
    threshold: float,
    rate: float,
    beta2: float = 1 - 1e-5,
    eps: float = 1e-20,
    eps_outside_sqrt: bool = False,
    reset_momentum: bool = False,
    decay_steps: int = 0,
    decay_factor: float = 0.1,
) -> optax.GradientTransformationExtraArgs:
    """The latent-weight-free rule of the binary kernels: ``optim.bop``, ``optim.bso`` or ``optim.t_bso``.

    Args:
      name: one of ``FLIP_OPTIMIZERS``.
      timesteps: T (T-BSO keeps one second moment per time step).
      threshold: BSO's gamma (Bop's tau).
      rate: ``1 - beta1``, the momentum's rate (Bop's gamma).
      beta2, eps, eps_outside_sqrt: T-BSO's second moment (ignored by Bop and BSO).
      reset_momentum: zero the momentum where a weight flips (the BSO code's reset path).
      decay_steps: multiply ``threshold`` and ``rate`` by ``decay_factor`` every this many
        optimizer updates (the BSO code's x0.1 every 50 epochs); 0 keeps them constant (paper).
    """
    if name not in FLIP_OPTIMIZERS:
        raise ValueError(f"unknown flip optimizer {name!r}; known: {list(FLIP_OPTIMIZERS)}")
    if decay_steps:
        decayed = lambda value: optax.exponential_decay(value, transition_steps=decay_steps, decay_rate=decay_factor, staircase=True)
        threshold, rate = decayed(threshold), decayed(rate)
    if name == "t_bso":
        return t_bso(timesteps, threshold, OneMinus(rate), beta2, eps, eps_outside_sqrt=eps_outside_sqrt, reset_momentum=reset_momentum)
    if name == "bso":
        return bso(threshold, OneMinus(rate), reset_momentum=reset_momentum)
    return bop(threshold, rate, reset_momentum=reset_momentum)


def fp_sgd(
    learning_rate: float = 0.1,
    *,
    total_steps: int | None = None,
    schedule: str = "cosine",
) -> optax.GradientTransformation:
    r"""SGD without momentum or weight decay for the full-precision parameters of BSO/T-BSO.

    .. math::

      \theta_k = \theta_{k-1} - \eta_k g_k, \quad
      \eta_k = \tfrac{\eta_0}{2} \left(1 + \cos\left(\pi \min(k, K) / K\right)\right)

    ``schedule="cosine"`` (default) is the paper's "cosine 0.1 -> 0" over ``K = total_steps``.
    ``schedule="constant"`` is what the released code runs (``eta_k = eta_0``): it attaches its
    ``CosineAnnealingLR`` to the Bop wrapper, whose param groups its inner SGD never reads.
    Neither uses momentum (the code's ``SGD(lr=args.lr)``; the paper names none).

    ``k`` counts ``update`` calls: an online loop calls it once per time step, so
    ``total_steps = epochs * batches_per_epoch * T``.

    Args:
      learning_rate: ``eta_0``; 0.1 on CIFAR, 0.2 in the ImageNet script.
      total_steps: ``K``, required for the cosine schedule.
      schedule: ``"cosine"`` or ``"constant"``.

    Example:
      >>> from bsnn_jax.optim import fp_sgd
      >>> tx = fp_sgd(0.1, total_steps=400 * 391 * 2)       # paper: CIFAR, 400 epochs, T=2
      >>> tx_code = fp_sgd(0.1, schedule="constant")          # released code
    """
    if schedule == "cosine" and (total_steps is None or total_steps < 1):
        raise ValueError(f"the cosine schedule needs total_steps >= 1, got {total_steps}")
    lr = make_schedule(schedule, learning_rate=learning_rate, total_steps=total_steps or 1)
    return make_optimizer("sgd", lr, momentum=0.0)
