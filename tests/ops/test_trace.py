"""ops.adaptive_decay and presynaptic_trace against hand-worked values of the BSO code's rule."""

import jax.numpy as jnp
import numpy as np
import pytest

from bsnn_jax import ops


@pytest.mark.parametrize(
    "drive, previous, expected",
    [
        (0.05, -0.5, -0.1),  # inside the clamp: the ratio itself
        (0.4, -0.8, -0.5),  # -0.5 exactly
        (-0.9, 0.4, -0.5),  # -2.25 clamped to -lambda
        (0.3, 0.2, 0.5),  # 1.5 clamped to +lambda
        (0.3, 0.0, 0.5),  # zero denominator: safe_divide's default, lambda
        (0.0, 0.0, 0.5),  # 0/0 = nan: the default
        (jnp.inf, 1.0, 0.5),  # inf: the default
    ],
)
def test_adaptive_decay_is_the_clamped_safe_ratio(drive, previous, expected):
    got = ops.adaptive_decay(jnp.float32(drive), jnp.float32(previous), 0.5)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_adaptive_trace_over_three_steps_by_hand():
    """Soft reset, lambda = 0.5, V_th = 1; inputs [1.5, -0.2, 0] and [1.2, 0.3, 0.9]:
    v = 1.5 fires, v_post 0.5, n = -0.5, a = 1; v = 0.05, n = 0.05, P = -0.1, a = -0.1;
    v = 0.025, n = 0.025, P = 0.5, a = -0.05.
    v = 1.2 fires, v_post 0.2, n = -0.8, a = 1; v = 0.4, n = 0.4, P = -0.5, a = -0.5;
    v = 1.1 fires, v_post 0.1, n = -0.9, P = -2.25 -> -0.5, a = 0.25 + 1 = 1.25."""
    currents = jnp.array([[1.5, 1.2], [-0.2, 0.3], [0.0, 0.9]])
    v, previous_drive, trace, traces = jnp.zeros(2), jnp.zeros(2), jnp.zeros(2), []
    for x in currents:
        v = 0.5 * v + x
        s = (v >= 1.0).astype(jnp.float32)
        v = v - s
        drive = v - s
        trace = ops.presynaptic_trace(trace, s, ops.adaptive_decay(drive, previous_drive, 0.5))
        previous_drive = drive
        traces.append(trace)
    np.testing.assert_allclose(jnp.stack(traces), [[1.0, 1.0], [-0.1, -0.5], [-0.05, 1.25]], atol=1e-6)
