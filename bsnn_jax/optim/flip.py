"""Latent-weight-free optimizers that flip binary weights: Bop, BSO and T-BSO.

All three share one rule (:func:`_flip_optimizer`): keep a momentum ``m`` of the gradients and
flip a weight where its sign agrees with ``m`` by more than a threshold. They differ only in the
threshold: a constant for Bop and BSO (which are the same optimizer under another name, see
:func:`bso`), per time step and scaled by a running second moment for T-BSO.

The updates these transformations return are ``-2 w`` where a weight flips and ``0`` elsewhere,
so ``optax.apply_updates`` turns ``w`` into exactly ``-w``: ``w + (-2 w)`` is exact in floating
point (doubling is exact and ``-w`` is representable), and a kernel that starts at +-1 stays
+-1 forever. Use them as the whole transformation of the binary kernels (for example through
:func:`bsnn_jax.optim.binary_partition`); chaining a scale after them would break this.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax


class OneMinus(NamedTuple):
    """A momentum coefficient written as its complement: ``OneMinus(r)`` means ``beta = 1 - r``.

    ``r`` is a float or an optax schedule of ``r``. float32 cannot hold ``beta`` closer to 1 than
    about 6e-8, so ``1 - beta(count)`` of a schedule of ``beta`` rounds small rates: the
    reference code's decay of the rate 1e-3 by 0.1 every 50 epochs reaches 1e-10, which as a
    ``beta`` in float32 is exactly 1 (a frozen momentum). Giving the rate keeps it exact:

    >>> import optax
    >>> from bsnn_jax.optim import OneMinus, t_bso
    >>> decay = dict(transition_steps=50 * 391 * 2, decay_rate=0.1, staircase=True)
    >>> tx = t_bso(timesteps=2,
    ...            threshold=optax.exponential_decay(5e-7, **decay),
    ...            beta1=OneMinus(optax.exponential_decay(1e-3, **decay)))
    """

    rate: optax.ScalarOrSchedule


class FlipState(NamedTuple):
    """State of :func:`bop`, :func:`bso` and :func:`t_bso`.

    Attributes:
      count: int32 number of ``update`` calls so far; schedules are evaluated at it. An online
        training loop calls ``update`` once per time step, so this counts T per minibatch.
      momentum: ``m``, shaped like the binary kernels. The only float state of Bop/BSO: no
        latent weights are kept.
      second_moment: T-BSO's ``v``, one float32 vector of shape ``[T]`` per kernel (one scalar
        per layer and time step); ``None`` for Bop and BSO.
    """

    count: jax.Array
    momentum: optax.Updates
    second_moment: optax.Updates | None


def _at(value: optax.ScalarOrSchedule, count: jax.Array) -> Any:
    return value(count) if callable(value) else value


def _rate_of(beta: float | optax.Schedule | OneMinus, name: str) -> optax.ScalarOrSchedule:
    """The momentum rate ``1 - beta``, computed in Python's float64 when ``beta`` is a float."""
    if isinstance(beta, OneMinus):
        if not callable(beta.rate) and not 0 < beta.rate <= 1:
            raise ValueError(f"{name}=OneMinus(rate) needs 0 < rate <= 1, got {beta.rate}")
        return beta.rate
    if callable(beta):
        return lambda count: 1 - beta(count)
    if not 0 <= beta < 1:
        raise ValueError(f"{name} must be in [0, 1), got {beta}")
    return 1.0 - beta


def _check_threshold(threshold: optax.ScalarOrSchedule) -> None:
    if not callable(threshold) and threshold < 0:
        raise ValueError(f"threshold must be >= 0 (or a schedule), got {threshold}")


def _check_binary(params: optax.Params, name: str) -> None:
    """Refuse kernels that are not +-gamma per output channel (+-1 included).

    The flip update preserves |w|, so a kernel that starts as real numbers (a fresh kaiming
    init) would never become binary. Skipped for abstract values (``jax.eval_shape``, ``jit``).
    """
    for path, w in jax.tree_util.tree_leaves_with_path(params):
        if isinstance(w, jax.core.Tracer) or not hasattr(w, "ndim"):
            continue
        a = jnp.abs(jnp.asarray(w))
        per_channel = jnp.max(a, axis=tuple(range(a.ndim - 1)), keepdims=True) if a.ndim else a
        if not bool(jnp.all((a == per_channel) & (a > 0))):
            raise ValueError(
                f"{name}: the kernel at {jax.tree_util.keystr(path)} is not binary (+-1, or +-gamma per "
                "output channel); flip optimizers keep |w|, so sign the kernels before building the "
                "optimizer state, e.g. bsnn_jax.optim.sign_binary_kernels(model)"
            )


def _flips(w: jax.Array, m: jax.Array, threshold: jax.Array) -> jax.Array:
    """Where a weight flips, BSO Eq. 12 / 14 and Bop's rule: ``sign(w) * m > threshold``.

    ``sign(w)`` rather than ``w`` keeps the threshold on the momentum's scale for a kernel
    ``+-gamma``; for +-1 it is the papers' ``w * m``. A strict ``>`` means equality does not
    flip (the reference's ``torch.sign(0) = 0`` would zero the weight there).
    """
    return jnp.sign(w) * m > threshold


def _flip_optimizer(
    threshold: optax.ScalarOrSchedule,
    rate: optax.ScalarOrSchedule,
    *,
    reset_momentum: bool,
    name: str,
    timesteps: int | None = None,
    beta2: float = 0.0,
    eps: float = 0.0,
    eps_outside_sqrt: bool = False,
) -> optax.GradientTransformationExtraArgs:
    """The core of Bop/BSO (``timesteps=None``) and T-BSO (``timesteps=T``)."""
    _check_threshold(threshold)

    def init_fn(params):
        _check_binary(params, name)
        second_moment = None
        if timesteps is not None:
            second_moment = jax.tree.map(lambda _: jnp.zeros((timesteps,), jnp.float32), params)
        return FlipState(jnp.zeros([], jnp.int32), optax.tree_utils.tree_zeros_like(params), second_moment)

    def update_fn(updates, state, params=None, *, t=None, **extra_args):
        del extra_args  # meant for other transformations of a chain or partition
        if params is None:
            raise ValueError(f"{name} flips the weights it is given: call update(grads, state, params)")
        thr, r = _at(threshold, state.count), _at(rate, state.count)
        # Larq's m + r (g - m) equals beta m + (1 - beta) g and keeps a tiny rate exact.
        momentum = jax.tree.map(lambda m, g: m + r * (g - m), state.momentum, updates)
        second_moment = state.second_moment
        if timesteps is None:
            thresholds = jax.tree.map(lambda _: thr, momentum)
        else:
            if t is None:
                raise ValueError(f"{name} needs the time step: update(grads, state, params, t=t), 0 <= t < {timesteps}")
            if not isinstance(t, jax.core.Tracer) and not 0 <= int(t) < timesteps:
                raise ValueError(f"{name} was built for timesteps={timesteps}, got t={t}")
            second_moment = jax.tree.map(
                lambda v, g: v.at[t].set(beta2 * v[t] + (1 - beta2) * jnp.mean(jnp.square(g.astype(jnp.float32)))),
                second_moment,
                updates,
            )
            scale = (lambda v: jnp.sqrt(v) + eps) if eps_outside_sqrt else (lambda v: jnp.sqrt(v + eps))
            thresholds = jax.tree.map(lambda v: thr * scale(v[t]), second_moment)
        flipped = jax.tree.map(_flips, params, momentum, thresholds)
        # -2 w, not a new value: apply_updates then computes w + (-2 w) = -w exactly.
        new_updates = jax.tree.map(lambda w, f: jnp.where(f, -2 * w, jnp.zeros_like(w)), params, flipped)
        if reset_momentum:
            momentum = jax.tree.map(lambda m, f: jnp.where(f, jnp.zeros_like(m), m), momentum, flipped)
        return new_updates, FlipState(optax.safe_increment(state.count), momentum, second_moment)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def bop(
    threshold: optax.ScalarOrSchedule = 1e-8,
    gamma: optax.ScalarOrSchedule = 1e-4,
    *,
    reset_momentum: bool = False,
) -> optax.GradientTransformationExtraArgs:
    r"""Binary optimizer (Bop), as ``larq.optimizers.Bop``.

    .. math::

      m_k = m_{k-1} + \gamma (g_k - m_{k-1}), \quad m_0 = 0 \\
      w_k = -w_{k-1} \text{ where } \mathrm{sign}(w_{k-1}) \, m_k > \tau, \text{ else } w_{k-1}

    The returned update is ``w_k - w_{k-1}``: ``-2 w`` where a weight flips, 0 elsewhere.
    Larq writes the second line ``w = sign(-sign(w m - tau) w)`` with ``sign(0) = +1``, which
    differs only at exact equality ``w m = tau``: there Larq sets ``w = +1``, Bop here keeps
    ``w`` (a strict threshold, as BSO's reference semantics).

    Args:
      threshold: ``tau``, a float >= 0 or an optax schedule of it.
      gamma: the adaptivity rate, a float or an optax schedule of it. Schedules are evaluated
        at the number of previous ``update`` calls, as Larq evaluates Keras schedules at
        ``iterations``.
      reset_momentum: zero ``m`` of the weights that flip (the BSO code's ``reset`` path,
        ``m *= (reverse + 1) / 2``); off in Larq and in the papers.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose ``update(grads, state, params)``
      needs ``params`` (the +-1 kernels) and ignores extra keyword arguments.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from bsnn_jax.optim import bop
      >>> w = jnp.array([1.0, -1.0, 1.0])
      >>> tx = bop(threshold=0.05, gamma=0.5)
      >>> state = tx.init(w)
      >>> updates, state = tx.update(jnp.array([0.2, 0.2, -0.2]), state, w)
      >>> optax.apply_updates(w, updates)   # m = [0.1, 0.1, -0.1]; w m = [0.1, -0.1, -0.1]
      Array([-1., -1.,  1.], dtype=float32)

    References:
      Helwegen et al., `Latent Weights Do Not Exist: Rethinking Binarized Neural Network
      Optimization <https://arxiv.org/abs/1906.02107>`_, NeurIPS 2019 (Algorithm 1).
    """
    if not callable(gamma) and not 0 < gamma <= 1:
        raise ValueError(f"gamma must be in (0, 1], got {gamma}")
    return _flip_optimizer(threshold, gamma, reset_momentum=reset_momentum, name="bop")


def bso(
    threshold: optax.ScalarOrSchedule = 5e-7,
    beta: float | optax.Schedule | OneMinus = 1 - 1e-3,
    *,
    reset_momentum: bool = False,
) -> optax.GradientTransformationExtraArgs:
    r"""Binary Spiking Online optimization (BSO), BSO paper Eq. 11-12.

    .. math::

      M_k = \beta M_{k-1} + (1 - \beta) G_k, \quad M_0 = 0 \\
      W_k = -\mathrm{sign}(W_{k-1} \odot M_k - \gamma) \odot W_{k-1}

    i.e. a weight flips where ``W M > gamma`` (the paper's gamma is this ``threshold``). In the
    online framework ``G_k`` is the gradient of one time step and ``update`` is called at every
    time step. This is Bop applied per time step, with Bop's ``tau = threshold`` and
    ``gamma = 1 - beta`` (methods-spec section 3), and it is implemented as exactly that.

    Defaults are the paper's CIFAR values (threshold 5e-7, beta 1 - 1e-3). Options reproduce
    what the reference code does differently, all off by default: ``reset_momentum`` (its
    ``reset=True`` path, which its scripts never call) and the decay by 0.1 every 50 epochs of
    the threshold and the rate ``1 - beta`` (pass optax schedules, the rate through
    :class:`OneMinus`).

    Args:
      threshold: the flip threshold (the paper's gamma), a float >= 0 or a schedule.
      beta: the momentum coefficient in [0, 1), a schedule of it, or :class:`OneMinus` of the
        rate ``1 - beta`` (exact for rates below float32's resolution near 1).
      reset_momentum: zero the momentum of the weights that flip, as the reference code's
        ``reset`` path.

    Returns:
      An ``optax.GradientTransformationExtraArgs``; ``update(grads, state, params)`` needs the
      +-1 (or +-gamma per output channel) kernels as ``params``.

    Example:
      >>> import jax.numpy as jnp, optax
      >>> from bsnn_jax.optim import bso
      >>> w = jnp.array([[1.0, -1.0], [-1.0, 1.0]])
      >>> tx = bso(threshold=0.1, beta=0.5)
      >>> state = tx.init(w)
      >>> updates, state = tx.update(jnp.array([[0.4, 0.4], [0.1, -0.4]]), state, w)
      >>> optax.apply_updates(w, updates)   # M = G / 2; W M = [[.2, -.2], [-.05, -.2]]
      Array([[-1., -1.],
             [-1.,  1.]], dtype=float32)

    References:
      Liang et al., `Towards Efficient Training of Binary Spiking Neural Networks via Binary
      Spiking Online Optimization <https://arxiv.org/abs/2511.12502>`_, ICML 2025.
    """
    return bop(threshold, _rate_of(beta, "beta"), reset_momentum=reset_momentum)


def t_bso(
    timesteps: int,
    threshold: optax.ScalarOrSchedule = 5e-7,
    beta1: float | optax.Schedule | OneMinus = 1 - 1e-3,
    beta2: float = 1 - 1e-5,
    eps: float = 1e-20,
    *,
    eps_outside_sqrt: bool = False,
    reset_momentum: bool = False,
) -> optax.GradientTransformationExtraArgs:
    r"""Temporal-aware BSO (T-BSO), BSO paper Eq. 13-14.

    .. math::

      M_k = \beta_1 M_{k-1} + (1 - \beta_1) G_k[t] \\
      v_k[t] = \beta_2 v_{k-1}[t] + (1 - \beta_2) \operatorname{mean}(G_k[t]^2) \\
      W_k = -\mathrm{sign}(W_{k-1} \odot M_k - \gamma \sqrt{v_k[t] + \epsilon}) \odot W_{k-1}

    ``M`` is shared by all time steps; ``v`` holds ONE scalar per kernel (layer) and time step,
    a ``[T]`` vector, of which step ``t`` is updated and used. No bias correction, as the
    paper. Only the leaf's ``v[t]`` changes at call ``t``; the other entries are kept.

    ``eps_outside_sqrt=True`` is the reference code's form ``W M / (sqrt(v[t]) + eps) > gamma``,
    evaluated as ``W M > gamma (sqrt(v[t]) + eps)`` (the same inequality, as the denominator is
    positive); use it with ``eps=1e-10`` to match the code. The default ``eps=1e-20`` inside the
    square root gives the same floor ``gamma * 1e-10`` while ``v[t] = 0``.

    Args:
      timesteps: T, the number of time steps per sample; ``update`` takes ``t`` in [0, T).
      threshold: the paper's gamma, a float >= 0 or a schedule.
      beta1: the momentum coefficient, a schedule of it, or :class:`OneMinus` of ``1 - beta1``.
      beta2: the second-moment coefficient in [0, 1) (the code never schedules it).
      eps: added to ``v[t]`` under the square root (outside with ``eps_outside_sqrt``).
      eps_outside_sqrt: use the reference code's ``sqrt(v[t]) + eps``.
      reset_momentum: zero the momentum of the weights that flip (a BSO-code option, off).

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose
      ``update(grads, state, params, *, t)`` takes the time step ``t``: an int (checked against
      T) or a traced int32 scalar, so it runs inside a jitted or scanned T-loop (a traced ``t``
      cannot be checked: out of range, it reads a clamped entry of ``v`` and drops the write).
      Extra arguments other than ``t`` are ignored, so it composes with ``optax.partition``.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from bsnn_jax.optim import t_bso
      >>> w = jnp.array([1.0, -1.0, 1.0, -1.0])
      >>> tx = t_bso(timesteps=2, threshold=0.5, beta1=0.5, beta2=0.75, eps=0.0)
      >>> state = tx.init(w)
      >>> g = jnp.array([0.8, 0.8, -0.4, 0.0])   # mean(g^2) = 0.36, so v[1] = 0.09
      >>> updates, state = jax.jit(tx.update)(g, state, w, t=1)
      >>> optax.apply_updates(w, updates)      # flip where w m > 0.5 * 0.3: only the first
      Array([-1., -1.,  1., -1.], dtype=float32)
      >>> state.second_moment
      Array([0.  , 0.09], dtype=float32)

    References:
      Liang et al., `Towards Efficient Training of Binary Spiking Neural Networks via Binary
      Spiking Online Optimization <https://arxiv.org/abs/2511.12502>`_, ICML 2025.
    """
    if timesteps < 1:
        raise ValueError(f"t_bso needs timesteps >= 1, got {timesteps}")
    if not 0 <= beta2 < 1:
        raise ValueError(f"beta2 must be in [0, 1), got {beta2}")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    return _flip_optimizer(
        threshold,
        _rate_of(beta1, "beta1"),
        reset_momentum=reset_momentum,
        name="t_bso",
        timesteps=timesteps,
        beta2=beta2,
        eps=eps,
        eps_outside_sqrt=eps_outside_sqrt,
    )
