"""Losses, predictions and the firing-rate penalty against hand computations in numpy."""

import jax.numpy as jnp
import numpy as np
import pytest

from bsnn_jax.train import losses


def _log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


@pytest.fixture(scope="module")
def example():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 4, 5)).astype(np.float32) * 3  # T=3, B=4, K=5
    labels = np.array([0, 4, 2, 2], np.int32)
    return logits, labels


def test_mean_logits_cross_entropy_is_ce_of_time_average(example):
    logits, labels = example
    expected = -_log_softmax(logits.mean(axis=0))[np.arange(4), labels]
    got = losses.mean_logits_cross_entropy(jnp.asarray(logits), jnp.asarray(labels))
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_tet_is_mean_over_time_of_per_step_ce(example):
    logits, labels = example
    per_step = np.stack([-_log_softmax(logits[t])[np.arange(4), labels] for t in range(3)])
    got = losses.tet_cross_entropy(jnp.asarray(logits), jnp.asarray(labels))
    np.testing.assert_allclose(got, per_step.mean(axis=0), rtol=1e-5)


def test_hand_worked_two_class_example():
    # T=2, one sample, K=2, label 0: logits (0, 0) then (2, 0).
    logits = jnp.array([[[0.0, 0.0]], [[2.0, 0.0]]])
    labels = jnp.array([0])
    # mean logits (1, 0): CE = log(1 + e^-1)
    np.testing.assert_allclose(losses.get_loss("mean_logits")(logits, labels), [np.log1p(np.exp(-1.0))], rtol=1e-6)
    # TET: (log 2 + log(1 + e^-2)) / 2
    np.testing.assert_allclose(losses.get_loss("tet")(logits, labels), [(np.log(2.0) + np.log1p(np.exp(-2.0))) / 2], rtol=1e-6)


def test_prediction_uses_mean_over_time():
    # step 0 votes class 1 weakly, step 1 votes class 0 strongly: the mean picks class 0.
    logits = jnp.array([[[0.0, 1.0]], [[3.0, 0.0]]])
    assert int(losses.predictions(logits)[0]) == 0
    np.testing.assert_array_equal(losses.correct(logits, jnp.array([0])), [1.0])


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match=r"\[T, B, K\]"):
        losses.tet_cross_entropy(jnp.zeros((4, 5)), jnp.zeros((4,), jnp.int32))
    with pytest.raises(ValueError, match="labels have shape"):
        losses.tet_cross_entropy(jnp.zeros((2, 4, 5)), jnp.zeros((3,), jnp.int32))
    with pytest.raises(ValueError, match="unknown loss 'ce'"):
        losses.get_loss("ce")


def test_firing_rate_penalty_drops_first_and_last_layers_as_qsnn():
    rates = {"a": 0.9, "b": 0.1, "c": 0.3, "d": 0.0}
    # Q-SNN: fr[1:-1] -> (0.1, 0.3): ((0.1-0.5)^2 + (0.3-0.5)^2) / 2 = 0.1
    np.testing.assert_allclose(losses.firing_rate_penalty(rates), 0.1, rtol=1e-6)
    np.testing.assert_allclose(
        losses.firing_rate_penalty(rates, skip_first=False, skip_last=False, target=0.0), (0.81 + 0.01 + 0.09) / 4, rtol=1e-6
    )
    # too few layers to drop any: all count
    np.testing.assert_allclose(losses.firing_rate_penalty({"a": 0.5, "b": 0.7}), 0.02, rtol=1e-6)
    assert float(losses.firing_rate_penalty({})) == 0.0


def test_tet_mse_is_the_bso_code_loss(example):
    logits, labels = example
    onehot = np.eye(5, dtype=np.float32)[labels]
    per_step = [0.95 * -_log_softmax(logits[t])[np.arange(4), labels] + 0.05 * ((logits[t] - onehot) ** 2).mean(axis=-1) for t in range(3)]
    got = losses.tet_cross_entropy_mse(jnp.asarray(logits), jnp.asarray(labels))
    np.testing.assert_allclose(got, np.mean(per_step, axis=0), rtol=1e-5)
    assert losses.get_loss("tet_mse") is losses.tet_cross_entropy_mse
