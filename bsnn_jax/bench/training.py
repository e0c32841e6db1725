"""The training step a benchmark measures, assembled as ``bsnn train`` assembles it.

A benchmark states its choices as a run config (``train.config.default_config()`` with its model,
loss, optimizer and training mode set); the model, the optimizer and the step then come from
the same functions a training run uses (``train.setup.create_model``, ``assemble_optimizer``,
``create_train_state``, the step factory of ``config.train.mode``), so what is timed is what
trains, not a hand-made copy that could drift from it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import ml_collections
import optax
from flax import nnx

from bsnn_jax import data as data_lib
from bsnn_jax.train import config as config_lib
from bsnn_jax.train.setup import assemble_optimizer, create_model, make_step
from bsnn_jax.train.state import ModelDef, TrainState, create_train_state


@dataclasses.dataclass(frozen=True)
class Training:
    """A benchmark's model split for training, its optimizer, initial state and jitted step.

    Attributes:
      defs: the split model (the latent-weight-free one for a flip rule).
      tx: the optimizer of ``assemble_optimizer``.
      state: the initial state; the step donates it, so pass each call the state the last returned.
      step: ``step(state, batch) -> (state, metrics)``, jitted, not yet compiled.
    """

    defs: ModelDef
    tx: optax.GradientTransformation
    state: TrainState
    step: Callable


def random_data_info(input_shape: tuple[int, int, int], examples: int, num_classes: int = 10) -> data_lib.DatasetInfo:
    """What the model needs to know of a benchmark's random static images (no dataset is loaded)."""
    return data_lib.DatasetInfo(
        name="random", num_classes=num_classes, input_shape=tuple(input_shape), timesteps=None, num_train=examples, num_test=0
    )


def assemble(
    config: ml_collections.ConfigDict,
    *,
    input_shape: tuple[int, int, int],
    examples: int,
    prepare: Callable[[nnx.Module], object] | None = None,
) -> Training:
    """The :class:`Training` of ``config`` on random ``input_shape`` images, ``examples`` per step.

    ``prepare`` changes the model in place before the optimizer sees its parameters (the ANN
    bound's ReLU in place of every LIF layer). The schedule spans one step per epoch: its length
    matters only to a decaying schedule, and benchmarks use ``schedule.name = "constant"``.
    """
    config_lib.validate(config)
    model = create_model(config, random_data_info(input_shape, examples))
    if prepare is not None:
        prepare(model)
    optimizer = assemble_optimizer(config, model, steps_per_epoch=1)
    defs, state = create_train_state(optimizer.model, optimizer.tx, seed=config.seed)
    return Training(defs, optimizer.tx, state, make_step(config, defs, optimizer.tx))
