"""Losses and accuracy on time-major spiking-network logits ``[T, B, K]``.

Two losses appear in the AGMM/Q-SNN family of papers (methods-spec 1.4), a third in the BSO code:

- ``"mean_logits"``: the cross-entropy of the time-averaged logits,
  ``CE(1/T sum_t out_t, y)`` (STBP-style rate decoding);
- ``"tet"``: the per-time-step mean ``1/T sum_t CE(out_t, y)`` (TET, the Q-SNN code's
  ``proposedLoss`` without its firing-rate term);
- ``"tet_mse"``: TET with 5% of a mean-squared error to the one-hot label per step (OTTT / BSO).

Prediction is always by the mean over T of the logits (the Q-SNN evaluation code).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import optax


def _check(logits: jax.Array, labels: jax.Array) -> None:
    if logits.ndim != 3:
        raise ValueError(f"expected time-major logits [T, B, K], got shape {logits.shape}")
    if labels.shape != logits.shape[1:2]:
        raise ValueError(f"labels have shape {labels.shape}, expected [B] = ({logits.shape[1]},) to match logits {logits.shape}")


def mean_logits_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example ``CE(mean_t logits[t], y)``, shape ``[B]``."""
    _check(logits, labels)
    return optax.softmax_cross_entropy_with_integer_labels(jnp.mean(logits, axis=0), labels)


def tet_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example ``1/T sum_t CE(logits[t], y)`` (TET), shape ``[B]``."""
    _check(logits, labels)
    per_step = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.broadcast_to(labels, logits.shape[:2]))
    return jnp.mean(per_step, axis=0)


BSO_MSE_WEIGHT = 0.05  # the OTTT / BSO code's --loss_lambda


def tet_cross_entropy_mse(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Per-example ``1/T sum_t [(1 - l) CE(out_t, y) + l mean_k (out_t,k - onehot(y)_k)^2]``, l = 0.05.

    The loss of the OTTT and BSO code (``--loss_lambda 0.05``, methods-spec 2.2), shape ``[B]``.
    """
    _check(logits, labels)
    ce = tet_cross_entropy(logits, labels)
    onehot = jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
    mse = jnp.mean(jnp.square(logits - onehot[None]), axis=(0, 2))
    return (1 - BSO_MSE_WEIGHT) * ce + BSO_MSE_WEIGHT * mse


LOSSES: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "mean_logits": mean_logits_cross_entropy,
    "tet": tet_cross_entropy,
    "tet_mse": tet_cross_entropy_mse,
}


def get_loss(name: str) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """The per-example loss called ``name`` (one of ``LOSSES``)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; known: {sorted(LOSSES)}")
    return LOSSES[name]


def predictions(logits: jax.Array) -> jax.Array:
    """Class predicted from the mean over T of the logits, ``[T, B, K] -> [B]``."""
    return jnp.argmax(jnp.mean(logits, axis=0), axis=-1)


def correct(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """``1.0`` where the mean-over-T prediction equals the label, shape ``[B]``."""
    return (predictions(logits) == labels).astype(jnp.float32)


def firing_rate_penalty(
    rates: Mapping[str, jax.Array], *, target: float = 0.5, skip_first: bool = True, skip_last: bool = True
) -> jax.Array:
    """Q-SNN's firing-rate regulariser ``mean_l (fr_l - target)^2`` over LIF layers.

    ``rates`` maps a layer name to its mean spike rate, in network order (as
    ``bsnn_jax.metrics.firing_rates`` returns them). The Q-SNN code leaves out the first
    and the last entries of its list; ``skip_first``/``skip_last`` do the same when at least one
    layer remains (otherwise every layer counts). Returns 0 for a model without LIF layers.
    """
    values = list(rates.values())
    lo, hi = int(skip_first), len(values) - int(skip_last)
    if hi > lo:  # as Q-SNN's fr[1:-1], unless that would leave nothing
        values = values[lo:hi]
    if not values:
        return jnp.zeros((), jnp.float32)
    return jnp.mean(jnp.stack([(jnp.asarray(v, jnp.float32) - target) ** 2 for v in values]))
