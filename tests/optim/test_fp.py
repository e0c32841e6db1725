import doctest
import re

import jax.numpy as jnp
import numpy as np
import pytest

import bsnn_jax.optim.binary
import bsnn_jax.optim.flip
import bsnn_jax.optim.fp
from bsnn_jax.optim import fp_sgd


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
    np.testing.assert_allclose(learning_rates(fp_sgd(0.1, total_steps=4), 6), expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(learning_rates(fp_sgd(0.1, schedule="constant"), 3), [0.1] * 3, rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "the cosine schedule needs total_steps >= 1, got None"),
        ({"total_steps": 0}, "the cosine schedule needs total_steps >= 1, got 0"),
        ({"schedule": "step"}, "unknown schedule 'step'; known: ['cosine', 'constant']"),
    ],
)
def test_errors(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        fp_sgd(0.1, **kwargs)


@pytest.mark.parametrize("module", [bsnn_jax.optim.flip, bsnn_jax.optim.binary, bsnn_jax.optim.fp])
def test_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
