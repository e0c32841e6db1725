"""Training: one module per concern, put together by ``fit``.

- ``config``: the schema of a run and its validation; ``overrides``: ``--config.KEY=VALUE``.
- ``rundir``: a run directory's files and what identifies a run.
- ``setup``: data, model, the one optimizer assembly, mesh and state built from a config.
- ``step`` / ``online``: the jitted BPTT and online training steps; ``state``: the train state.
- ``mesh``: device mesh and multi-host; ``checkpoint``: Orbax checkpoints.
- ``epoch``: epoch metrics; ``evaluation``: test-split scoring; ``console``: progress and lines.
- ``restore``: a trained model loaded for inference; ``fit``: the training loop.

Example::

    from bsnn_jax import configs, train

    config = configs.get("demo")
    config.num_epochs = 1
    summary = train.fit(config, "runs/demo")          # resumes if runs/demo has a checkpoint
    print(summary["test_accuracy"], summary["firing_rate"], summary["model_size_mb"])
    print(train.evaluate("runs/demo"))
"""

from bsnn_jax.train import config, losses, mesh
from bsnn_jax.train.checkpoint import CheckpointError, RunCheckpoints
from bsnn_jax.train.config import ConfigError, default_config
from bsnn_jax.train.epoch import EpochMetrics, NonFiniteLossError
from bsnn_jax.train.evaluation import evaluate_split
from bsnn_jax.train.fit import fit
from bsnn_jax.train.restore import Restored, evaluate, restore
from bsnn_jax.train.rundir import RunDir, RunDirectoryError
from bsnn_jax.train.setup import OptimizerSetup, Run, assemble_optimizer, build, create_model
from bsnn_jax.train.state import ModelDef, TrainState, create_train_state, split_model
from bsnn_jax.train.step import make_eval_step, make_train_step, time_major

__all__ = [
    "CheckpointError",
    "ConfigError",
    "EpochMetrics",
    "ModelDef",
    "NonFiniteLossError",
    "OptimizerSetup",
    "Restored",
    "Run",
    "RunCheckpoints",
    "RunDir",
    "RunDirectoryError",
    "TrainState",
    "assemble_optimizer",
    "build",
    "config",
    "create_model",
    "create_train_state",
    "default_config",
    "evaluate",
    "evaluate_split",
    "fit",
    "losses",
    "make_eval_step",
    "make_train_step",
    "mesh",
    "restore",
    "split_model",
    "time_major",
]
