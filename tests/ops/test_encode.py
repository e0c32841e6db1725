"""Spike encoders: statistics (rate), first-spike times worked by hand (latency), a hand-worked signal (delta)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bsnn_jax.ops import encode


def test_direct_repeats_the_input_at_every_step():
    x = jnp.array([[0.2, -1.5], [3.0, 0.0]])
    out = encode.direct(x, 3)
    assert out.shape == (3, 2, 2)
    for t in range(3):
        np.testing.assert_array_equal(out[t], x)


def test_rate_spike_probability_is_the_intensity_within_binomial_tolerance():
    p = jnp.array([0.0, 0.1, 0.5, 0.9, 1.0, -0.5, 2.0])
    t, n = 200, 400
    spikes = np.asarray(encode.rate(jax.random.key(0), jnp.broadcast_to(p, (n, 7)), t))
    assert spikes.shape == (t, n, 7) and set(np.unique(spikes)) <= {0.0, 1.0}
    expected = np.clip(np.asarray(p), 0, 1)
    sd = np.sqrt(expected * (1 - expected) / (t * n))
    assert np.all(np.abs(spikes.mean(axis=(0, 1)) - expected) <= 5 * sd + 1e-12)
    # independent over time: spike counts of one element over T are Binomial(T, p), variance T p (1-p)
    counts = spikes[:, :, 2].sum(0)
    assert abs(counts.var() / (t * 0.25) - 1) < 0.25
    again = encode.rate(jax.random.key(0), jnp.broadcast_to(p, (n, 7)), t)
    other = encode.rate(jax.random.key(1), jnp.broadcast_to(p, (n, 7)), t)
    np.testing.assert_array_equal(spikes, again)
    assert np.any(spikes != np.asarray(other))


def test_latency_first_spike_times_by_hand():
    # T = 5: t_f = round((1 - p) * 4): p=1 -> 0, 0.5 -> 2, 0.25 -> 3, 0.05 -> round(3.8) = 4, 0 -> none
    x = jnp.array([1.0, 0.5, 0.25, 0.05, 0.0, 1.7])
    out = np.asarray(encode.latency(x, 5))
    expected = np.zeros((5, 6))
    for i, t in enumerate([0, 2, 3, 4, None, 0]):
        if t is not None:
            expected[t, i] = 1
    np.testing.assert_array_equal(out, expected)
    # inputs at or below the threshold stay silent
    assert np.asarray(encode.latency(jnp.array([0.2, 0.3]), 5, threshold=0.25)).sum(0).tolist() == [0.0, 1.0]


def test_delta_counts_threshold_crossings_of_a_hand_worked_signal():
    # threshold 0.5, reference starts at x[0] = 0:
    # t1: 0.3 - 0 = 0.3 -> 0;  t2: 1.2 - 0 = 2.4 thresholds -> +2, ref 1.0;  t3: 1.0 - 1.0 -> 0;
    # t4: 0.1 - 1.0 = -1.8 thresholds -> -1, ref 0.5;  t5: -0.6 - 0.5 = -2.2 -> -2, ref -0.5
    x = jnp.array([0.0, 0.3, 1.2, 1.0, 0.1, -0.6])
    np.testing.assert_array_equal(np.asarray(encode.delta(x, 0.5)), [0, 0, 2, 0, -1, -2])
    # per channel, time-major [T, C]
    two = jnp.stack([x, -x], axis=1)
    np.testing.assert_array_equal(np.asarray(encode.delta(two, 0.5))[:, 1], [0, 0, -2, 0, 1, 2])
    with pytest.raises(ValueError, match="threshold > 0"):
        encode.delta(x, 0.0)
