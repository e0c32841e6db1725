"""The BPTT training step and the evaluation step, jitted once each over a device mesh.

Both take the batch the loader produces, ``{"image": [B, H, W, C] or [B, T, H, W, C],
"label": [B]}``, move the time axis first where there is one (models are time-major), and
run the whole network over T (backpropagation through time).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh

from bsnn_jax.metrics import count_flips, flip_kernels, gradient_stats, run_with_spikes
from bsnn_jax.ops import compiler
from bsnn_jax.train import losses
from bsnn_jax.train.mesh import batch_sharding, replicated
from bsnn_jax.train.state import ModelDef, TrainState

# How gradients are computed: backpropagation through the T steps (this module's step) or
# online, one step at a time (``train.online``).
TRAIN_MODES = ("bptt", "online")

Regularizer = Callable[..., jax.Array]
"""``regularizer(model=, logits=, batch=, rates=, rng=) -> scalar`` added to the loss.

``rates`` is ``{LIF layer: mean spike rate}`` of this forward pass (differentiable), or
``None`` unless the step was made with ``collect_spikes=True``.
"""


def time_major(images: jax.Array) -> jax.Array:
    """``[B, T, H, W, C]`` event frames -> ``[T, B, H, W, C]``; static ``[B, H, W, C]`` unchanged."""
    if images.ndim == 5:
        return jnp.swapaxes(images, 0, 1)
    if images.ndim != 4:
        raise ValueError(f"expected images [B, H, W, C] or event frames [B, T, H, W, C], got shape {images.shape}")
    return images


def _forward(model: nnx.Module, x: jax.Array, collect_spikes: bool):
    if not collect_spikes:
        return model(x), None, None
    logits, spikes = run_with_spikes(model, x)
    return logits, spikes, {k: jnp.mean(v.astype(jnp.float32)) for k, v in spikes.items()}


def make_train_step(
    defs: ModelDef,
    tx: optax.GradientTransformation,
    *,
    loss: str = "tet",
    firing_rate_weight: float = 0.0,
    firing_rate_target: float = 0.5,
    regularizer: Regularizer | None = None,
    collect_spikes: bool | None = None,
    mesh: Mesh | None = None,
    donate: bool = True,
) -> Callable[[TrainState, dict[str, jax.Array]], tuple[TrainState, dict[str, jax.Array]]]:
    """Builds ``train_step(state, batch) -> (state, metrics)`` under ``jax.jit``.

    The objective is ``mean_b loss(logits_b, y_b) + firing_rate_weight * penalty(rates)
    + regularizer(...)``, with ``loss`` one of ``losses.LOSSES`` and ``penalty`` Q-SNN's
    ``mean_l (fr_l - target)^2`` (``losses.firing_rate_penalty``).

    Args:
      defs: the split model (``state.split_model``); BatchNorm runs in training mode.
      tx: the optax transformation whose state is ``state.opt_state``.
      loss: ``"tet"`` or ``"mean_logits"``.
      firing_rate_weight, firing_rate_target: Q-SNN's firing-rate term (0 switches it off).
      regularizer: any extra differentiable term, see ``Regularizer``.
      collect_spikes: capture LIF outputs in the forward pass (default: when a firing-rate
        term needs them).
      mesh: shards the batch over ``'data'`` and replicates the state; none for one device.
      donate: donate the input state's buffers to the output (the state is consumed).

    Returns:
      The jitted step; ``metrics`` (:func:`step_metrics`) has the batch means ``loss`` (data
      loss), ``objective`` (what was differentiated) and ``accuracy`` (mean-over-T prediction),
      the global norms ``grad_norm`` and ``param_norm`` (of the updated parameters), and the
      binarized layers' ``flips``, ``grad_mean`` and ``grad_var``.
    """
    loss_fn = losses.get_loss(loss)
    if collect_spikes is None:
        collect_spikes = bool(firing_rate_weight)

    def step(state: TrainState, batch: dict[str, jax.Array]):
        x, y = time_major(batch["image"]), batch["label"]
        rng, step_rng = jax.random.split(jax.random.wrap_key_data(state.rng))

        def objective(params):
            model = defs.model(params, state.model_state, training=True)
            logits, _, rates = _forward(model, x, collect_spikes)
            data_loss = jnp.mean(loss_fn(logits, y))
            total = data_loss
            if firing_rate_weight:
                total = total + firing_rate_weight * losses.firing_rate_penalty(rates, target=firing_rate_target)
            if regularizer is not None:
                total = total + regularizer(model=model, logits=logits, batch=batch, rates=rates, rng=step_rng)
            new_model_state = nnx.as_pure(nnx.state(model, nnx.Not(nnx.Param)))
            return total, (data_loss, logits, new_model_state)

        (total, (data_loss, logits, model_state)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params, flips = apply_updates(defs, model_state, state.params, updates)
        metrics = step_metrics(
            params,
            gradient_summary(defs, model_state, grads),
            flips,
            logits=logits,
            labels=y,
            loss=data_loss,
            objective=total,
        )
        new_state = state.replace(
            step=state.step + 1,
            params=params,
            model_state=model_state,
            opt_state=opt_state,
            rng=jax.random.key_data(rng),
        )
        return new_state, metrics

    return jit_train_step(step, mesh=mesh, donate=donate)


def apply_updates(defs: ModelDef, model_state: Any, params: Any, updates: Any) -> tuple[Any, jax.Array]:
    """``optax.apply_updates(params, updates)`` and how many binarized-layer kernel weights it
    changed the sign of (Larq's FlipRatio numerator; latent weights, or the +-1 kernels of a flip
    optimizer).

    The count is taken from the old parameters and the updates, and the update is made to depend
    on it (multiplied by ``count >= 0``, always 1): XLA then sees that every read of the old
    kernels comes before the write and updates the donated or loop-carried buffers in place. A
    comparison of old and new parameters after the update (or an ``optimization_barrier``) keeps
    a second copy of every kernel alive instead.
    """
    kernels = lambda tree: flip_kernels(defs.model(tree, model_state))  # noqa: E731
    flipped, _ = count_flips(kernels(params), kernels(optax.apply_updates(params, updates)))
    counted = jnp.asarray(flipped >= 0)  # a Python bool when the model has no binarizable kernels
    updates = jax.tree.map(lambda u: u * counted.astype(u.dtype), updates)
    return optax.apply_updates(params, updates), flipped


def gradient_summary(defs: ModelDef, model_state: Any, grads: Any) -> dict[str, Any]:
    """``grad_norm`` (global) and the binarized layers' ``grad_mean`` / ``grad_var`` (AGMM Prop. 1's
    per-layer mu and sigma^2) of a gradient tree: scalars only, so they can be summed over time steps."""
    stats = gradient_stats(flip_kernels(defs.model(grads, model_state)))
    return {
        "grad_norm": optax.tree.norm(grads),
        "grad_mean": {k: m for k, (m, _) in stats.items()},
        "grad_var": {k: v for k, (_, v) in stats.items()},
    }


def step_metrics(
    params: Any,
    grad_summary: dict[str, Any],
    flips: jax.Array,
    *,
    logits: jax.Array,
    labels: jax.Array,
    loss: jax.Array,
    objective: jax.Array,
) -> dict[str, Any]:
    """The metrics every training step reports, BPTT or online, from its final ``params``, its
    :func:`gradient_summary`, its updates' sign ``flips`` (:func:`apply_updates`) and its logits ``[T, B, K]``."""
    return {
        "loss": loss,
        "objective": objective,
        "accuracy": jnp.mean(losses.correct(logits, labels)),
        "param_norm": optax.tree.norm(params),  # non-finite once an update overflowed
        "flips": flips,
        **grad_summary,
    }


def jit_train_step(step, *, mesh: Mesh | None, donate: bool):
    """``jax.jit`` of a ``step(state, batch) -> (state, metrics)``: the batch sharded over the
    mesh's ``'data'`` axis, the state and metrics replicated, the input state donated."""
    kwargs: dict[str, Any] = {"donate_argnums": (0,) if donate else ()}
    if mesh is not None:
        kwargs["in_shardings"] = (replicated(mesh), batch_sharding(mesh))
        kwargs["out_shardings"] = (replicated(mesh), replicated(mesh))
    return compiler.jit(step, **kwargs)


def make_eval_step(
    defs: ModelDef,
    *,
    loss: str = "tet",
    firing_rates: bool = True,
    mesh: Mesh | None = None,
) -> Callable[[Any, Any, dict[str, jax.Array]], dict[str, jax.Array]]:
    """Builds ``eval_step(params, model_state, batch) -> sums`` under ``jax.jit``.

    BatchNorm uses its running statistics. ``batch`` may carry a float ``"mask"`` ``[B]``
    (0 for padding examples). Returns sums over the batch, to be added up over the test set:
    ``count``, ``loss`` (the training loss), ``correct`` (mean-over-T prediction),
    and with ``firing_rates``, ``spikes/<layer>`` (per-example mean spike rate of each LIF layer)
    plus ``spikes/all`` (the rate over every LIF neuron of the network).
    """
    loss_fn = losses.get_loss(loss)

    def step(params, model_state, batch):
        x, y = time_major(batch["image"]), batch["label"]
        mask = batch.get("mask", jnp.ones(y.shape, jnp.float32))
        model = defs.model(params, model_state, training=False)
        logits, spikes, _ = _forward(model, x, firing_rates)
        out = {
            "count": jnp.sum(mask),
            "loss": jnp.sum(loss_fn(logits, y) * mask),
            "correct": jnp.sum(losses.correct(logits, y) * mask),
        }
        if spikes:
            total_spikes, total_neurons = 0.0, 0
            for name, s in spikes.items():
                # [T, B, ...] -> per-example rate [B]
                per_example = jnp.mean(jnp.swapaxes(s, 0, 1).reshape(s.shape[1], -1).astype(jnp.float32), axis=1)
                out[f"spikes/{name}"] = jnp.sum(per_example * mask)
                n = s.size // s.shape[1]
                total_spikes = total_spikes + per_example * n
                total_neurons += n
            out["spikes/all"] = jnp.sum(total_spikes / total_neurons * mask)
        return out

    kwargs: dict[str, Any] = {}
    if mesh is not None:
        kwargs["in_shardings"] = (replicated(mesh), replicated(mesh), batch_sharding(mesh))
        kwargs["out_shardings"] = replicated(mesh)
    return compiler.jit(step, **kwargs)
