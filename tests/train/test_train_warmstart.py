"""``train.init_from``: a run starts from another run's weights (at another T), binary kernels
enter a flip rule's run as their signs, and a model that does not fit is a clear error."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from rich.console import Console

from bsnn_jax import optim, train
from bsnn_jax.optim.binary import BINARY
from bsnn_jax.train.checkpoint import CheckpointError
from bsnn_jax.train.warmstart import _same_layout, warm_start

QUIET = Console(quiet=True)
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def _leaves(tree):
    return {jax.tree_util.keystr(k): np.asarray(v) for k, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


@pytest.fixture(scope="module")
def source(tmp_path_factory, make_config):
    """A vanilla-BSNN run at T=2, two SGD steps: latent kernels no longer at their init."""
    workdir = tmp_path_factory.mktemp("source")
    train.fit(make_config(**{"model.variant": "bsnn", "num_epochs": 1, "steps_per_epoch": 2}), workdir, console=QUIET)
    return workdir


def test_fit_at_another_t_starts_from_the_source_weights(source, tmp_path, make_config):
    # At learning rate 1e-12 one step leaves the weights where they started (to 1e-6): the source's, not an init.
    config = make_config(
        **{"model.variant": "bsnn", "model.timesteps": 3, "num_epochs": 1, "steps_per_epoch": 1, "optimizer.learning_rate": 1e-12}
    )
    config.train.init_from = str(source)
    train.fit(config, tmp_path, console=QUIET)
    started, given = _leaves(train.restore(tmp_path).params), _leaves(train.restore(source).params)
    assert started.keys() == given.keys()
    for key, value in given.items():
        np.testing.assert_allclose(started[key], value, atol=1e-6, rtol=0, err_msg=key)
    fresh = _leaves(train.build(make_config(**{"model.variant": "bsnn"})).state.params)
    assert max(np.abs(fresh[k] - v).max() for k, v in given.items()) > 1e-2  # the check can tell an init apart


def test_a_flip_rule_run_takes_the_signs_of_latent_kernels(source, make_config):
    config = make_config(**{"model.variant": "bsnn", "optimizer.binary": "bop"})
    config.train.init_from = str(source)
    run = train.build(config)
    state = warm_start(run)
    labels = _leaves(optim.binary_labels(run.optimizer.model)(state.params))
    started, given = _leaves(state.params), _leaves(train.restore(source).params)
    assert sum(label == BINARY for label in labels.values()) >= 2
    for key, value in given.items():
        expected = np.where(value >= 0, 1.0, -1.0) if labels[key] == BINARY else value
        np.testing.assert_array_equal(started[key], expected, err_msg=key)
    for key, value in _leaves(train.restore(source).model_state).items():  # BatchNorm statistics come along
        np.testing.assert_array_equal(_leaves(state.model_state)[key], value, err_msg=key)


def test_a_model_that_does_not_fit_is_named(source, make_config):
    config = make_config(**{"model.variant": "agmm"})
    config.train.init_from = str(source)
    with pytest.raises(CheckpointError, match="do not match this run's model.*only there|do not match this run's model.*missing there"):
        warm_start(train.build(config))
    with pytest.raises(CheckpointError, match=r"params\['w'\] has shape \(3, 2\) there, \(4, 2\) here"):
        _same_layout("params", {"w": jnp.zeros((4, 2))}, {"w": jnp.zeros((3, 2))}, "runs/x")
