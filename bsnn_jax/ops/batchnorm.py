"""Training-mode batch normalisation whose backward keeps one activation: its input.

Autodiff through Flax's BatchNorm (``use_fast_variance=True``: ``var = mean(x^2) - mean(x)^2``)
keeps two activations per neuron and time step for the backward: ``x`` (for the variance) and
``x - mean`` (for the normalisation). Written in terms of ``x_hat = (x - mean) / sqrt(var + eps)``
and the per-channel statistics the gradient needs one activation (Ioffe & Szegedy 2015, Sec. 3):
this keeps ``x`` and rebuilds ``x_hat`` in the backward pass, 4 of the 16 bytes per neuron and
step BPTT kept on VGG-11 (XLA:CPU kept ``x`` anyway, read by the LIF's fused forward steps;
``benchmarks/results/bptt_memory.md``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from bsnn_jax.ops.once import computed_once


def batch_norm(x: jax.Array, scale: jax.Array, bias: jax.Array, epsilon: float = 1e-5) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Normalises ``x`` over every axis but the last with its own (batch) statistics.

    ``mu = mean(x)``, ``var = max(0, mean(x^2) - mu^2)`` (Flax's fast variance, the same values
    its BatchNorm computes and averages into its running statistics),
    ``y = (x - mu) * (scale / sqrt(var + eps)) + bias`` (Ioffe & Szegedy 2015, Alg. 1).

    The backward (a ``custom_vjp``) keeps ``x`` and per-channel statistics only and returns
    autodiff's gradients up to float rounding (N elements per channel, ``g_hat = g * scale``):
    ``dL/dx = rstd * (g_hat - mean(g_hat) - x_hat * mean(g_hat * x_hat)) + dL/dmu / N +
    dL/dvar * 2 x_hat / (rstd N)``, ``dL/dscale = sum(g * x_hat)``, ``dL/dbias = sum(g)``.

    Args:
      x: ``[..., C]``; computed in the wider of its dtype, the parameters' and float32.
      scale, bias: ``[C]``.
      epsilon: added to the variance.

    Returns:
      ``(y, mean, var)``: ``y`` like ``x`` in the computation's dtype, ``mean`` and ``var`` ``[C]``.
    """
    if x.ndim < 2 or scale.shape != x.shape[-1:] or bias.shape != x.shape[-1:]:
        raise ValueError(f"batch_norm expects x [..., C] and scale, bias [C], got {x.shape}, {scale.shape}, {bias.shape}")
    dtype = jnp.promote_types(jnp.result_type(x, scale, bias), jnp.float32)
    return _batch_norm(x.astype(dtype), scale.astype(dtype), bias.astype(dtype), float(epsilon))


def _statistics(x, epsilon):
    axes = tuple(range(x.ndim - 1))
    mean, mean_sq = jnp.mean(x, axes), jnp.mean(lax.square(x), axes)
    var = jnp.maximum(0.0, mean_sq - lax.square(mean))
    return mean, var, lax.rsqrt(var + epsilon)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _batch_norm(x, scale, bias, epsilon):
    return _forward(x, scale, bias, epsilon)[0]


def _forward(x, scale, bias, epsilon):
    mean, var, rstd = _statistics(x, epsilon)
    # The order of Flax's _normalize, so the forward values are the same to the bit.
    y = (x - mean) * (rstd * scale) + bias
    return (y, mean, var), (mean, rstd)


def _fwd(x, scale, bias, epsilon):
    (y, mean, var), (_, rstd) = _forward(x, scale, bias, epsilon)
    return (y, mean, var), (x, mean, rstd, scale)


def _bwd(epsilon, residuals, cotangents):
    x, mean, rstd, scale = residuals
    g, g_mean, g_var = cotangents
    axes = tuple(range(x.ndim - 1))
    n = x.size // x.shape[-1]
    # g often arrives as T per-step pieces (an unrolled LIF's gradient): XLA then sums each piece
    # and adds the T partial sums inside every element's evaluation of g_x below, T^2 work
    # (VGG-11 BPTT at T = 32: a third of the elementwise work). computed_once materialises the sum.
    # (g_scale, also an output of the step, XLA already computes once.)
    g_bias = computed_once(jnp.sum(g, axes))
    # x_hat made to depend on g (0 * sum(g)): XLA:CPU otherwise scheduled every layer's x_hat at the
    # start of the backward pass, all live at once, instead of when the layer's gradient arrives.
    # (0 * v is not folded for floats; a non-finite gradient gives a non-finite x_hat, as it would.)
    x_hat = (x - mean) * (rstd + 0 * g_bias)
    g_scale = jnp.sum(g * x_hat, axes)
    g_hat = g * scale
    g_x = rstd * (g_hat - g_bias * scale / n - x_hat * (g_scale * scale / n))
    g_x = g_x + g_mean / n + x_hat * (2 * g_var / (rstd * n))
    return g_x, g_scale, g_bias


_batch_norm.defvjp(_fwd, _bwd)
