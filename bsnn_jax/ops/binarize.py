"""Weight binarization (AGMM Eq. 5, XNOR-Net scaling)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


@jax.custom_vjp
def sign_ste(w: jax.Array) -> jax.Array:
    r"""sign(w) with sign(0) = +1, and the straight-through estimator under AGMM Eq. 5.

    $$\operatorname{sign}(w) = \begin{cases} +1 & w \ge 0 \\ -1 & w < 0 \end{cases},
    \qquad \frac{\partial \operatorname{sign}(w)}{\partial w} \approx \mathbb{1}_{|w| \le 1}$$

    Forward: ``+1 where w >= 0, else -1`` (dtype of ``w``).
    Backward: ``d sign / dw = 1_{|w| <= 1}`` (Bengio et al. 2013), so latent weights that
    have drifted beyond +-1 stop receiving gradient.
    """
    return jnp.where(w >= 0, 1, -1).astype(w.dtype)


def _sign_ste_fwd(w):
    return sign_ste(w), w


def _sign_ste_bwd(w, g):
    return (g * (jnp.abs(w) <= 1).astype(g.dtype),)


sign_ste.defvjp(_sign_ste_fwd, _sign_ste_bwd)


def channel_scale(w: jax.Array) -> jax.Array:
    r"""Per-output-channel scale gamma = mean |w| (XNOR-Net), AGMM Eq. 5.

    $$\gamma_o = \frac{1}{n} \sum_{i} |W_{i,o}|$$

    Flax kernels keep the output channel last (``[kh, kw, in, out]`` or ``[in, out]``), so the
    mean runs over every other axis. Returns shape ``[out]``.
    """
    return jnp.mean(jnp.abs(w), axis=tuple(range(w.ndim - 1)))


def binarize(w: jax.Array, detach_scale: bool = False) -> jax.Array:
    r"""w_b = gamma * sign(w), AGMM Eq. 5, with gamma = mean |w| per output channel.

    $$W^b_{\cdot,o} = \gamma_o \operatorname{sign}(W_{\cdot,o}), \qquad \gamma_o = \frac{1}{n} \sum_i |W_{i,o}|$$

    The gradient reaches ``w`` through both factors by default, as in XNOR-Net:
    ``dL/dw = gamma * 1_{|w|<=1} * dL/dw_b + sign(w)/n * sum_channel(sign(w) * dL/dw_b)``,
    where n is the number of weights per output channel. ``detach_scale=True`` stops the
    gradient through gamma (the Q-SNN code's choice), leaving only the STE term.

    A kernel that is already +-1 (latent-weight-free training, BSO) maps to itself.
    """
    if w.ndim < 2:
        raise ValueError(f"binarize expects a kernel with the output channel last (ndim >= 2), got shape {w.shape}")
    gamma = channel_scale(w)
    if detach_scale:
        gamma = jax.lax.stop_gradient(gamma)
    return gamma * sign_ste(w)
