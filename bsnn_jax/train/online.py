"""Online training (BSO, OTTT): one time step at a time, memory independent of T.

For each time step t the network runs one step from the membranes and presynaptic traces the
previous step left (``nn.set_online``), the loss of that step is differentiated with no path
back through time, and the weight gradient is taken from the traces (``ops.trace_gradient``).
BatchNorm normalises each step with that step's statistics. The optimizer is applied after every
step (BSO's real-time update; ``t`` reaches T-BSO) or once per batch with the steps' gradients
summed (OTTT). The T-loop is a Python loop inside one ``jit``: every step's activations are freed
before the next, so memory does not grow with T.
"""

from __future__ import annotations

from collections.abc import Callable
import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh

from bsnn_jax.nn import OnlineState, load_online_state, set_online
from bsnn_jax.train import losses
from bsnn_jax.train.state import ModelDef, TrainState
from bsnn_jax.train.step import jit_train_step, time_major

UPDATES = ("per_step", "per_batch")


def make_online_train_step(
    defs: ModelDef,
    tx: optax.GradientTransformation,
    *,
    timesteps: int,
    loss: str = "tet",
    update: str = "per_step",
    trace_decay: float = 0.5,
    mesh: Mesh | None = None,
    donate: bool = True,
) -> Callable[[TrainState, dict[str, jax.Array]], tuple[TrainState, dict[str, jax.Array]]]:
    """Builds the jitted online ``train_step(state, batch) -> (state, metrics)``.

    The objective of step t is ``loss(out_t, y) / T`` (with ``loss="tet"`` the steps' sum is the
    TET loss of BPTT; ``"mean_logits"`` applies cross-entropy to each step's logits alike).

    Args:
      defs, tx: the split model and the optimizer (``optim.binary_partition(...)`` for BSO/T-BSO);
        ``tx.update`` receives ``t`` as an extra argument.
      timesteps: T.
      update: ``"per_step"`` applies the optimizer after every time step (BSO), ``"per_batch"``
        once with the gradients summed over T (OTTT).
      trace_decay: lambda of the presynaptic trace, the LIF leak.
      mesh, donate: as ``make_train_step``.
    """
    if update not in UPDATES:
        raise ValueError(f"unknown online update {update!r}; known: {UPDATES}")
    loss_fn = losses.get_loss(loss)
    tx = optax.with_extra_args_support(tx)

    def step(state: TrainState, batch: dict[str, jax.Array]):
        x, y = time_major(batch["image"]), batch["label"]
        params, model_state, opt_state = state.params, state.model_state, state.opt_state
        carried, summed, logits_sum, loss_sum = None, None, 0.0, 0.0
        for t in range(timesteps):
            x_t = x if x.ndim == 4 else x[t : t + 1]

            def objective(p, model_state=model_state, carried=carried, t=t, x_t=x_t):
                model = defs.model(p, model_state, training=True)
                if carried is not None:
                    load_online_state(model, carried)
                set_online(model, True, t=t, trace_decay=trace_decay)
                logits = model(x_t)
                value = jnp.mean(loss_fn(logits, y)) / timesteps
                new_model_state = nnx.as_pure(nnx.state(model, nnx.All(nnx.Not(nnx.Param), nnx.Not(OnlineState))))
                return value, (logits[0], new_model_state, nnx.as_pure(nnx.state(model, OnlineState)))

            (value, (logits, model_state, carried)), grads = jax.value_and_grad(objective, has_aux=True)(params)
            logits_sum, loss_sum = logits_sum + logits, loss_sum + value
            if update == "per_step":
                updates, opt_state = tx.update(grads, opt_state, params, t=t)
                params = optax.apply_updates(params, updates)
            else:
                summed = grads if summed is None else jax.tree.map(jnp.add, summed, grads)
        if update == "per_batch":
            updates, opt_state = tx.update(summed, opt_state, params, t=timesteps - 1)
            params = optax.apply_updates(params, updates)
        metrics = {
            "loss": loss_sum,
            "accuracy": jnp.mean(losses.correct(logits_sum[None], y)),
            "param_norm": optax.tree.norm(params),
        }
        new_state = state.replace(step=state.step + 1, params=params, model_state=model_state, opt_state=opt_state)
        return new_state, metrics

    return jit_train_step(step, mesh=mesh, donate=donate)
