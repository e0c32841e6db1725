"""The training state as one pytree, and the split of an NNX model it is built from.

The model is split once (``nnx.split``) into a static graph definition and pure array trees:
``params`` (every ``nnx.Param``, binary kernels included) and ``model_state`` (everything else:
BatchNorm running statistics, RNG counters of stochastic layers). Jitted functions take these
trees and rebuild the module with ``nnx.merge``, which costs nothing at run time.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct

from bsnn_jax.models.functional import eval_view


@struct.dataclass
class TrainState:
    """Everything a training step reads and writes, as one pytree.

    Attributes:
      step: number of optimizer steps taken (int32 scalar).
      params: ``nnx.as_pure(nnx.state(model, nnx.Param))``.
      model_state: ``nnx.as_pure`` of the non-Param variables (BatchNorm statistics, ...).
      opt_state: the optax state of ``params``.
      rng: raw ``uint32`` key data of the run's random stream, advanced every step.
    """

    step: jax.Array
    params: Any
    model_state: Any
    opt_state: Any
    rng: jax.Array


@dataclasses.dataclass(frozen=True)
class ModelDef:
    """Static halves of a split model: BatchNorm in training mode, and in evaluation mode."""

    train: nnx.GraphDef
    eval: nnx.GraphDef

    def model(self, params: Any, model_state: Any, *, training: bool = False) -> nnx.Module:
        """Rebuilds the module from pure state trees (in or out of ``jit``)."""
        return nnx.merge(self.train if training else self.eval, params, model_state)


def split_model(model: nnx.Module) -> tuple[ModelDef, Any, Any]:
    """``model -> (ModelDef, params, model_state)`` with pure (array-leaf) state trees."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    eval_graphdef = nnx.graphdef(eval_view(model))
    return ModelDef(graphdef, eval_graphdef), nnx.as_pure(params), nnx.as_pure(rest)


def create_train_state(model: nnx.Module, tx: optax.GradientTransformation, *, seed: int = 0) -> tuple[ModelDef, TrainState]:
    """Splits ``model`` and initialises the optimizer; ``seed`` starts the run's RNG stream."""
    defs, params, model_state = split_model(model)
    state = TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        model_state=model_state,
        opt_state=tx.init(params),
        rng=jax.random.key_data(jax.random.key(seed)),
    )
    return defs, state


def param_count(params: Any) -> int:
    """Number of scalars in a parameter tree."""
    return sum(int(x.size) for x in jax.tree.leaves(params))
