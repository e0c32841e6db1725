"""Loading a trained run for inference: ``evaluate``, ``report``, ``export`` and ``landscape``.

:func:`restore` rebuilds a run's model from its ``config.json`` and reads one checkpoint's
parameters and model state: it builds no training loader and initialises no optimizer.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import ml_collections
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from bsnn_jax import data as data_lib
from bsnn_jax.metrics import model_size
from bsnn_jax.train import mesh as mesh_lib
from bsnn_jax.train import setup
from bsnn_jax.train.checkpoint import CheckpointError
from bsnn_jax.train.evaluation import eval_split, evaluate_split
from bsnn_jax.train.rundir import RunDir
from bsnn_jax.train.state import ModelDef, TrainState, split_model
from bsnn_jax.train.step import make_eval_step


@dataclasses.dataclass(frozen=True)
class Restored:
    """A trained model loaded for inference.

    Attributes:
      config: the run's config; dataset: its data (sources only: no loader is built).
      defs, params, model_state: the split model; ``defs.model(params, model_state)`` is it in
        evaluation mode (BatchNorm on running statistics), :attr:`model` the same.
      step: the checkpoint's step; description: the model fields of the run's fingerprint.
    """

    config: ml_collections.ConfigDict
    dataset: data_lib.Dataset
    defs: ModelDef
    params: Any
    model_state: Any
    step: int
    description: dict[str, Any]

    @property
    def model(self) -> nnx.Module:
        return self.defs.model(self.params, self.model_state)


def restore(workdir: str | Path, *, step: int | None = None, best: bool = False, mesh: Mesh | None = None) -> Restored:
    """Loads the model of the run in ``workdir`` at one checkpoint, for inference.

    Args:
      workdir: a directory written by ``bsnn train``.
      step: the checkpoint step (default: the latest, or the best with ``best=True``).
      best: use the checkpoint with the best test accuracy.
      mesh: where the parameters are placed (replicated); default: the run's config.
    """
    rundir = RunDir(workdir)
    config = rundir.load_config()
    dataset = setup.load_dataset(config)
    mesh = setup.run_mesh(config, mesh)
    # The optimizer assembly decides the model (a flip rule's latent-free copy) and the stored
    # form of its kernels; its transformation is never initialised here.
    optimizer = setup.assemble_optimizer(config, setup.create_model(config, dataset.info), steps_per_epoch=1)
    defs, params, model_state = split_model(optimizer.model)
    target = mesh_lib.replicate(
        TrainState(step=np.zeros((), np.int32), params=params, model_state=model_state, opt_state=None, rng=None), mesh
    )
    description = setup.describe_model(config, dataset.info)
    with rundir.checkpoints({"model": description, "dataset": config.dataset.name}, config.checkpoint, optimizer.codec) as checkpoints:
        steps = checkpoints.all_steps()
        if not steps:
            raise CheckpointError(f"{rundir.checkpoint_dir} holds no checkpoint yet: train first (bsnn train --workdir {rundir.path})")
        if step is None:
            step = checkpoints.best_step() if best else checkpoints.latest_step()
        elif step not in steps:
            raise CheckpointError(f"no checkpoint at step {step} in {rundir.checkpoint_dir}; available: {steps}")
        state = checkpoints.restore_model(step, target)
    return Restored(config, dataset, defs, state.params, state.model_state, int(step), description)


def evaluate(workdir: str | Path, *, step: int | None = None, best: bool = False, mesh: Mesh | None = None) -> dict[str, Any]:
    """Scores a checkpoint of the run in ``workdir`` on its test split.

    Returns:
      ``{"step", "test_loss", "test_accuracy", "firing_rate", "firing_rates", "model_size_mb",
      "model", "dataset"}``.
    """
    restored = restore(workdir, step=step, best=best, mesh=mesh)
    config = restored.config
    mesh = setup.run_mesh(config, mesh)
    eval_step = make_eval_step(restored.defs, loss=config.loss.name, firing_rates=True, mesh=mesh)
    result = evaluate_split(eval_step, restored.params, restored.model_state, eval_split(restored.dataset, config), mesh)
    return {
        "step": restored.step,
        **result,
        "model_size_mb": model_size(restored.model).size_mb,
        "model": restored.description,
        "dataset": config.dataset.name,
    }
