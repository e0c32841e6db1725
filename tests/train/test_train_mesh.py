"""Data parallelism: the same steps (BPTT, and online T-BSO) on a 1-device and an 8-device mesh
(virtual CPU devices from tests/conftest.py) give the same losses, parameters and BatchNorm
statistics, the latter proving that BN normalises over the global batch, not per device."""

import jax
import numpy as np
import pytest

from bsnn_jax import models
from bsnn_jax.train import mesh as mesh_lib
from bsnn_jax.train.config import default_config
from bsnn_jax.train.online import make_online_train_step
from bsnn_jax.train.setup import assemble_optimizer
from bsnn_jax.train.state import create_train_state
from bsnn_jax.train.step import make_eval_step, make_train_step

STEPS = 3


def _optimizer(variant: str, **settings):
    """The model and optimizer of a small_cnn config, through the library's one optimizer assembly."""
    c = default_config()
    c.model.variant, c.model.timesteps, c.schedule.name = variant, 2, "constant"
    for key, value in settings.items():
        *groups, field = key.split(".")
        node = c
        for g in groups:
            node = node[g]
        node[field] = value
    model = models.create("small_cnn", variant=variant, timesteps=2, input_shape=(8, 8, 1), rngs=0)
    setup = assemble_optimizer(c, model, steps_per_epoch=STEPS)
    return setup.model, setup.tx


def _bptt_sgd():
    model, tx = _optimizer("agmm")  # SGD momentum 0.9, weight decay 1e-4 on kernels
    return model, tx, lambda defs, tx, mesh: make_train_step(defs, tx, loss="tet", mesh=mesh)


def _online_t_bso():
    settings = {
        "train.mode": "online",
        "optimizer.binary": "t_bso",
        "optimizer.flip.threshold": 1e-3,
        "optimizer.momentum": 0.0,
        "optimizer.weight_decay": 0.0,
    }
    model, tx = _optimizer("bsnn", **settings)
    return model, tx, lambda defs, tx, mesh: make_online_train_step(defs, tx, timesteps=2, mesh=mesh)


@pytest.fixture(scope="module", params=[_bptt_sgd, _online_t_bso], ids=["bptt", "online_t_bso"])
def setup(request):
    model, tx, make_step = request.param()
    defs, state = create_train_state(model, tx, seed=0)
    rng = np.random.default_rng(0)
    batches = [
        {"image": rng.normal(size=(32, 8, 8, 1)).astype(np.float32), "label": rng.integers(0, 10, 32).astype(np.int32)}
        for _ in range(STEPS)
    ]
    return defs, tx, make_step, jax.device_get(state), batches


def _run(setup, devices):
    defs, tx, make_step, host_state, batches = setup
    mesh = mesh_lib.make_mesh(devices)
    state = mesh_lib.replicate(host_state, mesh)
    step = make_step(defs, tx, mesh)
    losses = []
    for b in batches:
        sharded = mesh_lib.shard_batch(b, mesh)
        assert len(sharded["image"].sharding.device_set) == devices
        state, metrics = step(state, sharded)
        losses.append(float(metrics["loss"]))
    assert len(jax.tree.leaves(state.params)[0].sharding.device_set) == devices  # replicated
    ev = make_eval_step(defs, loss="tet", mesh=mesh)(state.params, state.model_state, mesh_lib.shard_batch(batches[0], mesh))
    return losses, jax.device_get(state), jax.device_get(ev)


def test_one_and_eight_devices_give_the_same_run(setup):
    assert jax.device_count() >= 8, "tests/conftest.py should provide 8 virtual CPU devices"
    losses1, state1, eval1 = _run(setup, 1)
    losses8, state8, eval8 = _run(setup, 8)
    np.testing.assert_allclose(losses8, losses1, rtol=1e-5)
    assert losses1[-1] != losses1[0]  # the parameters did move
    for name in ("params", "model_state", "opt_state"):
        a = jax.tree_util.tree_flatten_with_path(getattr(state1, name))[0]
        b = jax.tree.leaves(getattr(state8, name))
        for (path, x), y in zip(a, b, strict=True):
            np.testing.assert_allclose(y, x, rtol=2e-4, atol=2e-5, err_msg=f"{name}{jax.tree_util.keystr(path)}")
    for k in eval1:
        np.testing.assert_allclose(eval8[k], eval1[k], rtol=1e-4, atol=1e-5, err_msg=k)


def test_batch_size_must_split_over_devices():
    with pytest.raises(ValueError, match="does not split over 8 devices"):
        mesh_lib.check_batch_size(12, mesh_lib.make_mesh(8))
    with pytest.raises(ValueError, match="only 8 are visible|asked for"):
        mesh_lib.make_mesh(jax.device_count() + 1)
