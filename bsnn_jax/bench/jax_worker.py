"""One ``bsnn_jax`` workload measured in this process: compile time, XLA's memory of the step,
the median of blocked training steps, peak resident memory over them, and inference throughput."""

from __future__ import annotations

import functools
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from bsnn_jax.bench.memory import memory_record
from bsnn_jax.bench.timing import blocked, images_per_second, training_steps
from bsnn_jax.bench.training import Training, assemble
from bsnn_jax.bench.workloads import Workload
from bsnn_jax.nn import LIF
from bsnn_jax.nn.online_state import submodule
from bsnn_jax.ops import compiler
from bsnn_jax.train import config as config_lib
from bsnn_jax.train.step import make_eval_step


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


def train_config(workload: Workload, seed: int = 0) -> ml_collections.ConfigDict:
    """The run config ``workload`` trains with: its model at its T (1 for the ANN bound, which
    takes T*B images instead), the mean-logits loss, SGD with momentum 0.9 at a constant 0.1 and
    no weight decay: the peers' ``torch.optim.SGD(lr=0.1, momentum=0.9)``."""
    c = config_lib.default_config()
    c.seed = seed
    c.batch_size = workload.examples
    c.model.name = workload.model
    c.model.variant = workload.variant
    c.model.timesteps = 1 if workload.ann else workload.timesteps
    c.model.time_fold = workload.time_fold
    c.model.compute_dtype = workload.compute_dtype
    c.model.remat = workload.remat
    c.loss.name = "mean_logits"
    c.optimizer.name = "sgd"
    c.optimizer.learning_rate = 0.1
    c.optimizer.momentum = 0.9
    c.optimizer.weight_decay = 0.0
    c.schedule.name = "constant"
    return c


def build(workload: Workload, seed: int = 0) -> tuple[Training, dict[str, jax.Array]]:
    """The training of ``workload`` (``bench.training.assemble``) and a random batch for it."""
    if workload.xla_defaults:
        # ops.compiler reads it when a step is jitted: set it before building one (a worker
        # process measures one workload, so it changes nothing else).
        os.environ[compiler.XLA_DEFAULTS_ENV] = "1"
    training = assemble(
        train_config(workload, seed),
        input_shape=workload.input_shape,
        examples=workload.examples,
        prepare=relu_instead_of_lif if workload.ann else None,
    )
    rng = np.random.default_rng(seed)
    batch = {
        "image": jnp.asarray(rng.uniform(0, 1, (workload.examples, *workload.input_shape)), jnp.float32),
        "label": jnp.asarray(rng.integers(0, 10, workload.examples), jnp.int32),
    }
    return training, batch


def run(workload: Workload, *, steps: int = 20, inference_calls: int = 10) -> dict[str, Any]:
    """Measures ``workload``: ``compile_s``, XLA's ``memory_record``, ``steps`` timed training
    steps after two warm-up steps (median, min, quartiles), ``peak_rss_bytes`` over the timed
    steps and its growth over the resident memory before them, and inference images/s."""
    training, batch = build(workload)
    start = time.perf_counter()
    compiled = training.step.lower(training.state, batch).compile()
    record: dict[str, Any] = {"compile_s": time.perf_counter() - start, **memory_record(compiled)}

    holder = {"state": training.state}

    def one_step():
        holder["state"], metrics = compiled(holder["state"], batch)
        jax.block_until_ready((holder["state"], metrics))

    record.update(training_steps(one_step, steps, warmup=2))

    eval_step = make_eval_step(training.defs, loss="mean_logits", firing_rates=False)
    params, model_state = holder["state"].params, holder["state"].model_state
    infer = functools.partial(blocked, eval_step, params, model_state, batch)
    record["inference_images_per_s"] = images_per_second(infer, workload.batch_size, inference_calls)
    return record
