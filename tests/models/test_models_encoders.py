"""A model's ``encoder`` option: the stem reads the encoded stream, as if the spikes were the input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import random_inputs  # tests/ is on sys.path (rootdir conftest)
from flax import nnx

from bsnn_jax import metrics, models, ops
from bsnn_jax.models.mlp import SpikingMLP
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
    with pytest.raises(ValueError, match=r"give NetOptions an encoder_key=jax.random.key\(seed\)"):
        models.NetOptions(models.VARIANTS["agmm"], timesteps=T, time_fold=True, encoder="rate")
    with pytest.raises(models.ModelInputError, match="'delta' codes how a sequence changes"):
        models.create("mlp", input_shape=(4,), encoder="delta")(jnp.zeros((2, 4)))
    config = O.apply_overrides(C.default_config(), [("model.encoder", "latency"), ("train.mode", "online")])
    with pytest.raises(C.ConfigError, match="model.encoder='latency' codes all T steps.*use model.encoder=direct or train.mode=bptt"):
        C.validate(config)
    with pytest.raises(C.ConfigError, match="encoder"):
        C.validate(O.apply_overrides(C.default_config(), [("model.encoder", "poisson")]))


def test_rate_encoder_feeds_the_stem_the_spikes_of_its_key_schedule():
    """The model splits its key at every call and feeds ``ops.encode.rate(draw, x, T)``: the same
    output as a direct model (same parameters) fed those spikes; the next call draws anew."""
    coded, direct = pair("rate")
    x = random_inputs.uniform(7, (5, 4))
    key = jax.random.wrap_key_data(coded.encoder_key[...])
    for _ in range(2):
        key, draw = jax.random.split(key)
        np.testing.assert_allclose(coded(x), direct(ops.encode.rate(draw, x, T)), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(coded.encoder_key[...], jax.random.key_data(key))  # the model state is the schedule's


@pytest.mark.parametrize("static", [True, False])
def test_rate_encoder_statistics_at_the_first_layer(static):
    """The first layer's mean input (the recording view) is the spike probability clip(x, 0, 1):
    p = 0.3 within 4 standard errors of a Bernoulli mean, x = 1.4 always and x = -0.5 never firing."""
    t, b, f = 8, 32, 25
    opts = models.NetOptions(models.VARIANTS["agmm"], timesteps=t, time_fold=True, encoder="rate", encoder_key=jax.random.key(0))
    model = SpikingMLP((4,), (f,), 2, opts, rngs=nnx.Rngs(0))  # one narrow layer: quick to compile
    shape = (b, f) if static else (t, b, f)
    for value, expected, tolerance in [(0.3, 0.3, 4 * np.sqrt(0.21 / (t * b * f))), (1.4, 1.0, 0.0), (-0.5, 0.0, 0.0)]:
        activity = metrics.measure_activity(model, [jnp.full(shape, value, jnp.float32)])
        assert activity.synapses["units.0.dense"].input_rate == pytest.approx(expected, abs=tolerance + 1e-7)


def test_rate_draws_depend_on_the_example_not_on_the_sharding():
    """Hosts and devices each hold a slice of the global batch: the draws are those of the whole
    batch (partitionable threefry), so slices differ by their examples, never by their device."""
    mesh = jax.make_mesh((len(jax.devices()),), ("data",))
    x = jnp.full((2 * len(jax.devices()), 6), 0.5)
    sharded = jax.device_put(x, jax.NamedSharding(mesh, jax.P("data")))
    encode = jax.jit(lambda k, v: ops.encode.rate(k, v, T))
    key = jax.random.key(3)
    np.testing.assert_array_equal(encode(key, sharded), encode(key, x))
    spikes = np.asarray(encode(key, x))
    assert len({spikes[:, i].tobytes() for i in range(x.shape[0])}) > x.shape[0] // 2  # examples draw differently
