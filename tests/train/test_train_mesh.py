"""Data parallelism: the same steps (BPTT, and online T-BSO) on a 1-device and an 8-device mesh
(virtual CPU devices from tests/conftest.py) give the same losses, parameters and BatchNorm
statistics, the latter proving that BN normalises over the global batch, not per device."""

import jax
import numpy as np
import pytest
from flax import nnx

from bsnn_jax import models
from bsnn_jax import optim as bsnn_optim
from bsnn_jax.train import mesh as mesh_lib
from bsnn_jax.train import optimizer as optim
from bsnn_jax.train.state import create_train_state
from bsnn_jax.train.online import make_online_train_step
from bsnn_jax.train.step import make_eval_step, make_train_step

STEPS = 3


def _bptt_sgd():
    model = models.create("small_cnn", variant="agmm", timesteps=2, input_shape=(8, 8, 1), rngs=0)
    tx = optim.make_optimizer("sgd", 0.1, mask=optim.weight_decay_mask(nnx.state(model, nnx.Param)), weight_decay=1e-4)
    return model, tx, lambda defs, tx, mesh: make_train_step(defs, tx, loss="tet", mesh=mesh)


def _online_t_bso():
    model = bsnn_optim.latent_free(models.create("small_cnn", variant="bsnn", timesteps=2, input_shape=(8, 8, 1), rngs=0))
    tx = bsnn_optim.binary_partition(model, binary=bsnn_optim.t_bso(2, threshold=1e-3), fp=optim.make_optimizer("sgd", 0.1, momentum=0.0))
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
        for (path, x), y in zip(a, b):
            np.testing.assert_allclose(y, x, rtol=2e-4, atol=2e-5, err_msg=f"{name}{jax.tree_util.keystr(path)}")
    for k in eval1:
        np.testing.assert_allclose(eval8[k], eval1[k], rtol=1e-4, atol=1e-5, err_msg=k)


def test_batch_size_must_split_over_devices():
    with pytest.raises(ValueError, match="does not split over 8 devices"):
        mesh_lib.check_batch_size(12, mesh_lib.make_mesh(8))
    with pytest.raises(ValueError, match="only 8 are visible|asked for"):
        mesh_lib.make_mesh(jax.device_count() + 1)
