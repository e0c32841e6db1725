"""Training: state, the BPTT step, mesh data parallelism, Orbax checkpoints, the fit/evaluate loop.

Example::

    from bsnn_jax import train

    config = train.config.load("experiments/configs/demo.py", [("num_epochs", "1")])
    summary = train.fit(config, "runs/demo")          # resumes if runs/demo has a checkpoint
    print(summary["test_accuracy"], summary["firing_rate"], summary["model_size_mb"])
    print(train.evaluate("runs/demo"))
"""

from bsnn_jax.train import config, losses, mesh, optimizer
from bsnn_jax.train.checkpoint import CheckpointError, RunCheckpoints
from bsnn_jax.train.config import ConfigError, default_config
from bsnn_jax.train.loop import NonFiniteLossError, Run, RunDirectoryError, build, create_model, evaluate, fit, run_eval
from bsnn_jax.train.state import ModelDef, TrainState, create_train_state, split_model
from bsnn_jax.train.step import make_eval_step, make_train_step, time_major

__all__ = [
    "CheckpointError",
    "ConfigError",
    "ModelDef",
    "NonFiniteLossError",
    "Run",
    "RunCheckpoints",
    "RunDirectoryError",
    "TrainState",
    "build",
    "config",
    "create_model",
    "create_train_state",
    "default_config",
    "evaluate",
    "fit",
    "losses",
    "make_eval_step",
    "make_train_step",
    "mesh",
    "optimizer",
    "run_eval",
    "split_model",
    "time_major",
]
