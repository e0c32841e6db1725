"""One ``bsnn_jax`` workload measured in this process: compile time, XLA's memory of the step,
the median of blocked training steps, peak resident memory over them, and inference throughput."""

from __future__ import annotations

import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from bsnn_jax import models
from bsnn_jax.bench.measure import images_per_second, memory_record, training_steps
from bsnn_jax.bench.workloads import Workload
from bsnn_jax.nn import LIF
from bsnn_jax.nn.online_state import submodule
from bsnn_jax.ops import compiler
from bsnn_jax.train.state import create_train_state
from bsnn_jax.train.step import make_eval_step, make_train_step


class ReLU(nnx.Module):
    """The ANN bound's activation, in place of a LIF layer."""

    def __call__(self, x: jax.Array) -> jax.Array:
        return jax.nn.relu(x)


def relu_instead_of_lif(model: nnx.Module) -> nnx.Module:
    """Replaces every LIF layer of ``model`` by a ReLU, in place (the ANN bound); returns it."""
    paths = [path for path, module in nnx.iter_graph(model) if isinstance(module, LIF)]
    if not paths:
        raise ValueError("the model has no LIF layer to replace")
    for path in paths:
        parent, key = submodule(model, path[:-1]), path[-1]
        if isinstance(key, int):
            parent[key] = ReLU()
        else:
            setattr(parent, key, ReLU())
    return model


def build(workload: Workload, seed: int = 0):
    """The model split for training, its state, and a random batch, for ``workload``."""
    if workload.xla_defaults:
        os.environ[compiler.XLA_DEFAULTS_ENV] = "1"
    model = models.create(
        workload.model,
        variant=workload.variant,
        num_classes=10,
        timesteps=1 if workload.ann else workload.timesteps,
        input_shape=workload.input_shape,
        time_fold=workload.time_fold,
        compute_dtype=workload.compute_dtype,
        remat=workload.remat,
        rngs=seed,
    )
    if workload.ann:
        relu_instead_of_lif(model)
    tx = optax.sgd(0.1, momentum=0.9)
    defs, state = create_train_state(model, tx, seed=seed)
    rng = np.random.default_rng(seed)
    batch = {
        "image": jnp.asarray(rng.uniform(0, 1, (workload.examples, *workload.input_shape)), jnp.float32),
        "label": jnp.asarray(rng.integers(0, 10, workload.examples), jnp.int32),
    }
    return defs, tx, state, batch


def run(workload: Workload, *, steps: int = 20, inference_calls: int = 10) -> dict[str, Any]:
    """Measures ``workload``: ``compile_s``, XLA's ``memory_record``, ``steps`` timed training
    steps after two warm-up steps (median, min, quartiles), ``peak_rss_bytes`` over the timed
    steps and its growth over the resident memory before them, and inference images/s."""
    defs, tx, state, batch = build(workload)
    train_step = make_train_step(defs, tx, loss="mean_logits", donate=True)
    start = time.perf_counter()
    compiled = train_step.lower(state, batch).compile()
    record: dict[str, Any] = {"compile_s": time.perf_counter() - start, **memory_record(compiled)}

    holder = {"state": state}

    def one_step():
        holder["state"], metrics = compiled(holder["state"], batch)
        jax.block_until_ready((holder["state"], metrics))

    record.update(training_steps(one_step, steps, warmup=2))

    eval_step = make_eval_step(defs, loss="mean_logits", firing_rates=False)
    params, model_state = holder["state"].params, holder["state"].model_state
    infer = lambda: jax.block_until_ready(eval_step(params, model_state, batch))  # noqa: E731
    record["inference_images_per_s"] = images_per_second(infer, workload.batch_size, inference_calls)
    return record
