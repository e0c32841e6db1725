"""Online training (BSO, OTTT): one time step at a time, no backpropagation through time.

For each time step t the network runs one step from the membranes and presynaptic traces the
previous step left (``nn.online``), the loss of that step is differentiated with no path
back through time, and the weight gradient is taken from the traces (``ops.trace_gradient``).
BatchNorm normalises each step with that step's statistics. The optimizer is applied after every
step (BSO's real-time update; ``t`` reaches T-BSO) or once per batch with the steps' gradients
summed (OTTT). The T-loop runs inside one ``jit`` as a ``lax.scan``: one loop body whose buffers
are reused, so peak memory is the same for every T >= 2 (``bsnn_jax/bench/online_memory.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax import lax
from jax.sharding import Mesh

from bsnn_jax import nn
from bsnn_jax.nn import OnlineState, load_online_state
from bsnn_jax.train import losses
from bsnn_jax.train.state import ModelDef, TrainState
from bsnn_jax.train.step import apply_updates, gradient_summary, jit_train_step, step_metrics, time_major

# When the optimizer runs: after every time step (BSO's real-time update) or once per batch (OTTT).
ONLINE_UPDATES = ("per_step", "per_batch")


def make_online_train_step(
    defs: ModelDef,
    tx: optax.GradientTransformation,
    *,
    timesteps: int,
    loss: str = "tet",
    update: str = "per_step",
    trace_decay: float = 0.5,
    trace: str = "constant",
    unroll: bool = False,
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
      trace: ``"constant"`` (OTTT, ``a_hat = lambda a_hat + s``) or ``"adaptive"`` (the BSO
        code's per-neuron decay clamped to ``[-lambda, lambda]``, ``ops.adaptive_decay``).
      unroll: write the T-loop out as T copies of the step instead of the ``lax.scan``. The scan
        compiles once whatever T is and its memory does not grow with T; the unrolled loop's does
        (XLA keeps buffers of earlier steps alive), for no speed gain since ``ops.conv2d`` keeps
        the loop body's convolutions on XLA:CPU's fast path.
      mesh, donate: as ``make_train_step``.

    Returns:
      The jitted step; ``metrics`` are those of the BPTT step (``step.step_metrics``): the loss
      summed over the T steps, the accuracy of the summed logits, the sign flips made by the
      step's updates (those of all T updates with ``per_step``), and the gradient statistics of
      the updates: of the gradient summed over T (``per_batch``), or the mean over the T updates
      of each one's statistics (``per_step``).
    """
    if update not in ONLINE_UPDATES:
        raise ValueError(f"unknown online update {update!r}; known: {ONLINE_UPDATES}")
    tx = optax.with_extra_args_support(tx)
    run_step = _step_gradient(defs, losses.get_loss(loss), timesteps, trace_decay, trace)

    def time_step(carry, t, x, y):
        params, model_state, opt_state, carried, gradients, flips, logits_sum, loss_sum = carry
        x_t = x if x.ndim == 4 else lax.dynamic_slice_in_dim(x, t, 1, axis=0)  # a static image is fed at every step
        (value, (logits, model_state, carried)), grads = run_step(t, x_t, y, params, model_state, carried)
        if update == "per_step":
            updates, opt_state = tx.update(grads, opt_state, params, t=t)
            params, flipped = apply_updates(defs, model_state, params, updates)
            flips = flips + flipped
            # Each step's gradient is spent on its own update; only its scalar statistics are
            # kept, so the loop carries no parameter-sized sum.
            grads = gradient_summary(defs, model_state, grads)
        gradients = jax.tree.map(jnp.add, gradients, grads)
        return (params, model_state, opt_state, carried, gradients, flips, logits_sum + logits, loss_sum + value), None

    def step(state: TrainState, batch: dict[str, jax.Array]):
        x, y = time_major(batch["image"]), batch["label"]
        carry = _initial_carry(run_step, defs, state, x, y, per_step=update == "per_step")
        body = lambda c, t: time_step(c, t, x, y)  # noqa: E731
        if unroll:
            for t in range(timesteps):
                carry, _ = body(carry, t)
        else:
            carry, _ = lax.scan(body, carry, jnp.arange(timesteps, dtype=jnp.int32))
        params, model_state, opt_state, _, gradients, flips, logits_sum, loss_sum = carry
        if update == "per_batch":
            updates, opt_state = tx.update(gradients, opt_state, params, t=timesteps - 1)
            params, flips = apply_updates(defs, model_state, params, updates)
            grad_summary = gradient_summary(defs, model_state, gradients)
        else:
            grad_summary = jax.tree.map(lambda total: total / timesteps, gradients)
        metrics = step_metrics(params, grad_summary, flips, logits=logits_sum[None], labels=y, loss=loss_sum, objective=loss_sum)
        new_state = state.replace(step=state.step + 1, params=params, model_state=model_state, opt_state=opt_state)
        return new_state, metrics

    return jit_train_step(step, mesh=mesh, donate=donate)


def _step_gradient(defs: ModelDef, loss_fn, timesteps: int, trace_decay: float, trace: str):
    """``run_step(t, x_t, y, params, model_state, carried)``: forward and backward of time step
    ``t`` from the carried membranes and traces (``None`` before the first step).

    Returns ``((loss_t, (logits_t, model_state, carried)), grads)``; the loss of step t is
    ``loss(out_t, y) / T``, differentiated with no path back through time.
    """

    def run_step(t, x_t, y, params, model_state, carried):
        def objective(p):
            model = nn.online(defs.model(p, model_state, training=True), t=t, trace_decay=trace_decay, trace=trace)
            if carried is not None:
                load_online_state(model, carried)
            logits = model(x_t)
            value = jnp.mean(loss_fn(logits, y)) / timesteps
            new_model_state = nnx.as_pure(nnx.state(model, nnx.All(nnx.Not(nnx.Param), nnx.Not(OnlineState))))
            return value, (logits[0], new_model_state, nnx.as_pure(nnx.state(model, OnlineState)))

        return jax.value_and_grad(objective, has_aux=True)(params)

    return run_step


def _initial_carry(run_step, defs: ModelDef, state: TrainState, x: jax.Array, y: jax.Array, *, per_step: bool) -> tuple:
    """The T-loop's carry before step 0: the state, and zeros shaped like one step's outputs.

    Zero membranes and traces are exactly "nothing carried yet" (u[-1] = 0, a_hat[-1] = 0), so
    step 0 has the same body as the others and the scan covers all T steps: one loop whose
    buffers are reused from step to step, the same peak memory for every T. Flips are counted
    at each update, not between the step's first and last parameters, as keeping the first ones
    would double the loop's parameter memory.
    """
    x_first = x if x.ndim == 4 else x[:1]
    (value, (logits, _, carried)), grads = jax.eval_shape(lambda: run_step(0, x_first, y, state.params, state.model_state, None))
    if per_step:
        grads = jax.eval_shape(lambda g: gradient_summary(defs, state.model_state, g), grads)
    zeros = lambda tree: jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), tree)  # noqa: E731
    return (
        state.params,
        state.model_state,
        state.opt_state,
        zeros(carried),
        zeros(grads),
        jnp.zeros((), jnp.int32),
        zeros(logits),
        zeros(value),
    )
