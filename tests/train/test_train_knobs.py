"""Optimizer knobs that only ``fit`` reads from the config, ``optimizer.grad_clip_norm`` and
``optimizer.nesterov``, checked on the parameters of the first two steps of one tiny run against
updates computed by hand (and by optax's own SGD) from gradients taken outside the training step.

One ``fit`` (a single compiled training step, no evaluation): clipping at a norm far below the
gradient's, Nesterov momentum 0.9, a constant learning rate and no weight decay, so that each
update is ``-lr * (g_hat + 0.9 * m)`` with ``g_hat`` the clipped gradient and ``m`` its running sum.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from rich.console import Console

from bsnn_jax import train

LR, CLIP, MU = 1.0, 0.05, 0.9
KNOBS = {
    "optimizer.learning_rate": LR,
    "optimizer.grad_clip_norm": CLIP,
    "optimizer.nesterov": True,
    "optimizer.momentum": MU,
    "optimizer.weight_decay": 0.0,
    "schedule.name": "constant",
    "checkpoint.every_steps": 1,  # keeps the parameters after step 1 as well as after step 2
}


def flat(tree):
    return np.concatenate([np.asarray(x, np.float64).ravel() for x in jax.tree.leaves(tree)])


@pytest.fixture(scope="module")
def two_steps(tmp_path_factory, make_config):
    """Parameters before, after step 1 and after step 2 of ``fit``, and the gradient function and
    first two batches needed to replay those steps."""
    config = make_config(**KNOBS)
    workdir = tmp_path_factory.mktemp("knobs")
    summary = train.fit(config, workdir, until_step=2, console=Console(quiet=True))
    assert summary["step"] == 2
    run = train.build(config)  # the same seed: the initial state fit started from
    with train.RunDir(workdir).checkpoints(run.fingerprint, config.checkpoint, run.optimizer.codec) as checkpoints:
        assert checkpoints.all_steps() == [1, 2]
        after = {step: checkpoints.restore(step, run.state)[0].params for step in (1, 2)}
    it = iter(run.train_loader)
    batches = [next(it), next(it)]

    @jax.jit
    def gradient(params, model_state, image, label):
        # the TET loss of the configs, written out: mean over T and the batch of -log softmax[label]
        def loss(p):
            logits = run.defs.model(p, model_state, training=True)(image)  # [T, B, K]
            log_p = jax.nn.log_softmax(logits, axis=-1)
            return -jnp.mean(jnp.take_along_axis(log_p, label[None, :, None], axis=-1))

        return jax.grad(loss)(params)

    def grad_at(params, k):
        return gradient(params, run.state.model_state, jnp.asarray(batches[k]["image"]), jnp.asarray(batches[k]["label"]))

    return run.state.params, after[1], after[2], grad_at


def clipped(g):
    """g scaled to norm CLIP when its global norm is larger (optax/PyTorch clip_grad_norm_)."""
    norm = np.sqrt(sum(float(np.sum(np.square(np.asarray(x, np.float64)))) for x in jax.tree.leaves(g)))
    return jax.tree.map(lambda x: np.asarray(x, np.float64) * min(1.0, CLIP / norm), g), norm


def test_grad_clip_norm_scales_the_first_update_to_the_clip_norm(two_steps):
    """Step 1 from zero momentum: the parameter change is -lr * (1 + mu) * g * CLIP / |g|, with g
    the gradient of the first batch computed here and |g| its global norm (Nesterov's first update
    is g + mu * g): a change of norm exactly lr * 1.9 * CLIP, along -g."""
    p0, p1, _, grad_at = two_steps
    g_hat, norm = clipped(grad_at(p0, 0))
    assert norm > 5 * CLIP  # the clip is active, by a margin
    expected = -LR * (1 + MU) * flat(g_hat)
    change = flat(p1) - flat(p0)
    np.testing.assert_allclose(np.linalg.norm(change), LR * (1 + MU) * CLIP, rtol=1e-4)
    np.testing.assert_allclose(change, expected, rtol=1e-3, atol=1e-4 * np.abs(expected).max())


def test_nesterov_second_step_equals_an_optax_nesterov_replay(two_steps):
    """Parameters after step 2 equal optax.sgd(lr, momentum=0.9, nesterov=True) fed the clipped
    gradients computed here (the second at the run's own step-1 parameters); plain heavy-ball
    momentum from the same gradients lands measurably elsewhere."""
    p0, p1, p2, grad_at = two_steps
    g1, _ = clipped(grad_at(p0, 0))
    g2, norm2 = clipped(grad_at(p1, 1))
    assert norm2 > 5 * CLIP

    def replay(nesterov):
        opt = optax.sgd(LR, momentum=MU, nesterov=nesterov)
        state = opt.init(g1)
        _, state = opt.update(g1, state)
        update, _ = opt.update(g2, state)
        return flat(p1) + flat(update)

    nesterov, heavy_ball = replay(True), replay(False)
    expected_change = nesterov - flat(p1)
    tolerance = 1e-3 * np.linalg.norm(expected_change)
    assert np.linalg.norm(flat(p2) - nesterov) < tolerance
    assert np.linalg.norm(heavy_ball - nesterov) > 100 * tolerance  # the test tells the two apart
