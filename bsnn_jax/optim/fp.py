"""The full-precision side of BSO training: plain SGD on the first conv, BN, FC and biases."""

from __future__ import annotations

import optax

FP_SCHEDULES = ("cosine", "constant")


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

    Returns:
      An ``optax.GradientTransformation``.

    Example:
      >>> from bsnn_jax.optim import fp_sgd
      >>> tx = fp_sgd(0.1, total_steps=400 * 391 * 2)       # paper: CIFAR, 400 epochs, T=2
      >>> tx_code = fp_sgd(0.1, schedule="constant")          # released code
    """
    if schedule not in FP_SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; known: {list(FP_SCHEDULES)}")
    if schedule == "constant":
        return optax.sgd(learning_rate)
    if total_steps is None or total_steps < 1:
        raise ValueError(f"the cosine schedule needs total_steps >= 1, got {total_steps}")
    return optax.sgd(optax.cosine_decay_schedule(learning_rate, total_steps))
