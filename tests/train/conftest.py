"""Shared tiny run configs for the training tests (sklearn digits, 8x8 images, small_cnn, T=2)."""

import pytest

from bsnn_jax.train.config import default_config


def tiny_config(**overrides):
    """1437 train / 360 test digits, batch 32 -> 44 steps per epoch; 2 epochs; one device."""
    c = default_config()
    c.name = "tiny"
    c.dataset.name = "digits"
    c.dataset.num_threads = 1
    c.model.name = "small_cnn"
    c.model.variant = "agmm"
    c.model.timesteps = 2
    c.batch_size = 32
    c.eval_batch_size = 128  # 360 test records: two full batches and a padded one
    c.num_epochs = 2
    c.optimizer.learning_rate = 0.05
    c.log_every_steps = 10
    c.progress = False
    c.mesh.num_devices = 1
    for key, value in overrides.items():
        node = c
        *parents, last = key.split(".")
        for p in parents:
            node = node[p]
        node[last] = value
    return c


@pytest.fixture(scope="session")
def make_config():
    return tiny_config


def restore_training_state(workdir, step=None):
    """``(run, state, step)``: the whole train state of a checkpoint (optimizer state included),
    restored onto the run ``config.json`` describes, as ``fit`` resumes it. ``train.restore``
    reads only the model."""
    from bsnn_jax import train

    rundir = train.RunDir(workdir)
    config = rundir.load_config()
    run = train.build(config)
    with rundir.checkpoints(run.fingerprint, config.checkpoint, run.optimizer.codec) as checkpoints:
        step = checkpoints.latest_step() if step is None else step
        state, _ = checkpoints.restore(step, run.state)
    return run, state, step
