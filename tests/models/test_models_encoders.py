"""A model's ``encoder`` option: the stem reads the encoded stream, as if the spikes were the input."""

import jax.numpy as jnp
import numpy as np
import pytest

from bsnn_jax import models
from bsnn_jax.train import config as C
from bsnn_jax.train import overrides as O

T = 3


def pair(encoder, **kw):
    """Two models with the same parameters (same seed): one encodes, one is fed the code directly."""
    make = lambda enc: models.create("mlp", variant="agmm", num_classes=4, timesteps=T, input_shape=(4,), encoder=enc, rngs=5, **kw)  # noqa: E731
    return make(encoder), make("direct")


def test_latency_encoder_equals_feeding_the_hand_made_first_spikes():
    coded, direct = pair("latency", encoder_threshold=0.0)
    x = jnp.array([[1.0, 0.3, 0.1, 0.0], [0.0, 1.0, 0.3, 0.1]])
    # t_f = round((1 - p)(T - 1)) = round(2 (1 - p)): 1.0 -> 0, 0.3 -> round(1.4) = 1, 0.1 -> round(1.8) = 2, 0 -> never
    spikes = np.zeros((T, 2, 4), np.float32)
    for b, row in enumerate([[0, 1, 2, None], [None, 0, 1, 2]]):
        for i, t in enumerate(row):
            if t is not None:
                spikes[t, b, i] = 1
    np.testing.assert_allclose(coded(x), direct(jnp.asarray(spikes)), rtol=1e-6, atol=1e-6)


def test_delta_encoder_equals_feeding_the_hand_made_crossings():
    coded, direct = pair("delta", encoder_threshold=0.5)
    x = jnp.array([[[0.0, 0.0, 0.0, 0.0]], [[1.2, -0.6, 0.3, 0.0]], [[1.0, 0.5, 0.9, 0.0]]])  # [T, B=1, F]
    # per feature from x[0] = 0: (+2, 0), (-1, +2), (0, +1), (0, 0) at t = 1, 2
    crossings = jnp.array([[[0.0, 0.0, 0.0, 0.0]], [[2.0, -1.0, 0.0, 0.0]], [[0.0, 2.0, 1.0, 0.0]]])
    np.testing.assert_allclose(coded(x), direct(crossings), rtol=1e-6, atol=1e-6)


def test_encoder_errors_name_the_fix():
    with pytest.raises(ValueError, match=r"encode in your input pipeline with bsnn_jax.ops.encode.rate\(key, x, T\)"):
        models.create("mlp", input_shape=(4,), encoder="rate")
    with pytest.raises(models.ModelInputError, match="'delta' codes how a sequence changes"):
        models.create("mlp", input_shape=(4,), encoder="delta")(jnp.zeros((2, 4)))
    config = O.apply_overrides(C.default_config(), [("model.encoder", "latency"), ("train.mode", "online")])
    with pytest.raises(C.ConfigError, match="model.encoder='latency' codes all T steps.*use model.encoder=direct or train.mode=bptt"):
        C.validate(config)
    with pytest.raises(C.ConfigError, match="encoder"):
        C.validate(O.apply_overrides(C.default_config(), [("model.encoder", "poisson")]))
