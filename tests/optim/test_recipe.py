"""Learning-rate schedules, weight-decay masks by parameter kind, and one optimizer step by hand."""

import doctest
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import bsnn_jax.optim.binary
import bsnn_jax.optim.flip
import bsnn_jax.optim.recipe
from bsnn_jax import models, optim
from bsnn_jax.nn import BinaryParam


def test_cosine_schedule_without_warmup_matches_pytorch_cosine_annealing():
    lr, total = 0.1, 100
    s = optim.make_schedule("cosine", learning_rate=lr, total_steps=total)
    for t in (0, 1, 25, 50, 99, 100, 150):
        expected = 0.5 * lr * (1 + math.cos(math.pi * min(t, total) / total))
        np.testing.assert_allclose(float(s(t)), expected, rtol=1e-5, atol=1e-7)


def test_cosine_schedule_with_linear_warmup_and_floor():
    lr, total, warm, end = 0.2, 110, 10, 0.01
    s = optim.make_schedule("cosine", learning_rate=lr, total_steps=total, warmup_steps=warm, end_value=end)
    for t in (0, 1, 5, 9):
        np.testing.assert_allclose(float(s(t)), lr * t / warm, rtol=1e-5, atol=1e-7)
    for t in (10, 35, 60, 109, 110):
        expected = end + (lr - end) * 0.5 * (1 + math.cos(math.pi * (t - warm) / (total - warm)))
        np.testing.assert_allclose(float(s(t)), expected, rtol=1e-5)


def test_constant_schedule_and_errors():
    s = optim.make_schedule("constant", learning_rate=0.3, total_steps=10, warmup_steps=2)
    np.testing.assert_allclose([float(s(t)) for t in (0, 1, 2, 9)], [0.0, 0.15, 0.3, 0.3], rtol=1e-6)
    with pytest.raises(ValueError, match="unknown schedule 'step'"):
        optim.make_schedule("step", learning_rate=0.1, total_steps=10)
    with pytest.raises(ValueError, match="warmup_steps"):
        optim.make_schedule("cosine", learning_rate=0.1, total_steps=10, warmup_steps=10)


@pytest.fixture(scope="module")
def model():
    return models.create("small_cnn", variant="agmm", timesteps=2, input_shape=(8, 8, 1), rngs=0)


def test_weight_decay_mask_by_parameter_kind(model):
    params = nnx.state(model, nnx.Param)
    mask = dict(nnx.to_flat_state(optim.weight_decay_mask(params)))
    kinds = dict(nnx.to_flat_state(params))
    assert set(mask) == set(kinds)
    for path, decays in mask.items():
        var = kinds[path]
        name = path[-1]
        if isinstance(var, BinaryParam):
            assert decays, path  # latent binary kernels decay (Q-SNN: QConv2d subclasses Conv2d)
        elif name == "kernel":
            assert decays, path  # full-precision first conv and classifier
        else:
            assert name in ("scale", "bias", "alpha") and not decays, path
    decayed = sorted(".".join(map(str, p)) for p, d in mask.items() if d)
    assert decayed == ["fc.kernel", "units.0.conv.kernel", "units.1.conv.kernel", "units.2.conv.kernel"]
    assert any(p[-1] == "alpha" for p in mask)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_masked_weight_decay_in_one_step(model, name):
    params = nnx.as_pure(nnx.state(model, nnx.Param))
    mask = optim.weight_decay_mask(nnx.state(model, nnx.Param))
    grads = jax.tree.map(jnp.ones_like, params)
    lr, wd = 0.1, 0.01
    tx = optim.make_optimizer(name, lr, mask=mask, weight_decay=wd)
    updates, _ = tx.update(grads, tx.init(params), params)
    new = optax.apply_updates(params, updates)
    for (path, w), (_, w1), (_, m) in zip(nnx.to_flat_state(params), nnx.to_flat_state(new), nnx.to_flat_state(mask), strict=True):
        w, w1 = np.asarray(w), np.asarray(w1)
        d = wd if m else 0.0
        if name == "sgd":  # first step: momentum buffer = g + wd * w
            expected = w - lr * (1.0 + d * w)
        elif name == "adam":  # L2 then Adam: first step moves by lr * sign(g + wd*w)
            expected = w - lr * np.sign(1.0 + d * w)
        else:  # AdamW: Adam step on g, then decoupled decay lr * wd * w
            expected = w - lr * 1.0 - lr * d * w
        np.testing.assert_allclose(w1, expected, rtol=1e-4, atol=1e-6, err_msg=str(path))


def test_unknown_optimizer():
    with pytest.raises(ValueError, match="unknown optimizer 'lamb'"):
        optim.make_optimizer("lamb", 0.1)


@pytest.mark.parametrize("decay_steps, flips_at", [(2, 3), (0, None)])
def test_flip_optimizer_decays_threshold_and_rate_as_the_bso_code(decay_steps, flips_at):
    """Hand-worked, w = +1, g = 0.1 every update, threshold 0.1, rate 0.5, x0.1 after 2 updates:
    m = 0.05, 0.075 (no flip: m <= 0.1), then with rate 0.05 and threshold 0.01 m = 0.07625 > 0.01:
    a flip at the 3rd update. Without the decay m = 0.0875, 0.09375, ... never exceeds 0.1."""
    tx = optim.make_flip_optimizer("bso", timesteps=1, threshold=0.1, rate=0.5, decay_steps=decay_steps, decay_factor=0.1)
    w = jnp.ones((1, 1))
    state = tx.init(w)
    flipped_at = None
    for k in range(1, 6):
        updates, state = tx.update(jnp.full((1, 1), 0.1), state, w)
        if k == 3 and decay_steps:
            np.testing.assert_allclose(float(state.momentum[0, 0]), 0.07625, rtol=1e-6)
        if float(updates[0, 0]) != 0 and flipped_at is None:
            flipped_at = k
    assert flipped_at == flips_at
    with pytest.raises(ValueError, match="unknown flip optimizer 'adam'"):
        optim.make_flip_optimizer("adam", timesteps=1, threshold=0.1, rate=0.5)


def learning_rates(tx, steps):
    state, p, g = tx.init(jnp.zeros(1)), jnp.zeros(1), jnp.ones(1)
    rates = []
    for _ in range(steps):
        updates, state = tx.update(g, state, p)
        rates.append(-float(updates[0]))
    return rates


def test_cosine_is_the_paper_constant_is_the_released_code():
    # eta_k = 0.1 (1 + cos(pi k / 4)) / 2 for k = 0..4, then 0
    expected = [0.1, 0.1 * (1 + np.cos(np.pi / 4)) / 2, 0.05, 0.1 * (1 - np.cos(np.pi / 4)) / 2, 0.0, 0.0]
    np.testing.assert_allclose(learning_rates(optim.fp_sgd(0.1, total_steps=4), 6), expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(learning_rates(optim.fp_sgd(0.1, schedule="constant"), 3), [0.1] * 3, rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "the cosine schedule needs total_steps >= 1, got None"),
        ({"total_steps": 0}, "the cosine schedule needs total_steps >= 1, got 0"),
        ({"schedule": "step"}, "unknown schedule 'step'; known: ['cosine', 'constant']"),
    ],
)
def test_fp_sgd_errors(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        optim.fp_sgd(0.1, **kwargs)


@pytest.mark.parametrize("module", [bsnn_jax.optim.flip, bsnn_jax.optim.binary, bsnn_jax.optim.recipe])
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
