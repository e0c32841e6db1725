"""A value XLA computes once instead of once per use (an exact identity with an identity gradient)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


@jax.custom_vjp
def computed_once(value: jax.Array) -> jax.Array:
    """``value`` unchanged (and its gradient), as an array XLA computes once, not once per use.

    XLA fuses elementwise producers into their consumers and duplicates cheap ones into every
    consumer. Over an unrolled recurrence (``U[t]`` feeds ``H[t+1]`` and what the backward keeps)
    each time step's fusion then recomputes the whole chain ``U[0..t]`` from the inputs:
    ``T^2 / 2`` steps of work and input reads instead of T (XLA:CPU, jax 0.10: a VGG-11 BPTT step
    at T = 32 ran per-step LIF fusions up to 32 steps long; ``benchmarks/results/bptt_memory.md``).
    The same happens to a per-channel sum over T per-step pieces (``ops.batch_norm``'s backward):
    its T partial sums are added up again in every element of the consumer.
    A division is an instruction XLA does not duplicate, and dividing by a 1 it cannot prove is 1
    (``1 + 0 * v`` where ``v`` is finite: ``0 * v`` is not folded for floats) keeps every bit. The
    backward divides the gradient the same way, which breaks the backward recurrence too; nothing
    is kept for it. ``jax.custom_vjp``: reverse mode only, like ``ops.spike``. ``ops.lif_scan``
    applies it to its membrane every 4 steps (``ops.lif.scan_keeping_carry``), ``ops.batch_norm``'s backward to its bias
    gradient.
    """
    return _divide_by_one(value)


def _divide_by_one(v: jax.Array) -> jax.Array:
    return v / jnp.where(jnp.isfinite(v), 1 + 0 * v, 1).astype(v.dtype)


computed_once.defvjp(lambda value: (_divide_by_one(value), None), lambda _, g: (_divide_by_one(g),))
