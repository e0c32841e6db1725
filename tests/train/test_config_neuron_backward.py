"""model.neuron.fused / save_dtype / membrane_kept_every (issue 20): validated with messages naming the fix, passed to
every LIF of the model, and not part of a run's identity (a run saved before them resumes)."""

import pytest
from flax import nnx

from bsnn_jax import models
from bsnn_jax.nn import LIF
from bsnn_jax.train import config as C
from bsnn_jax.train import overrides as O
from bsnn_jax.train import rundir


@pytest.mark.parametrize(
    "overrides, message",
    [
        ([("model.neuron.save_dtype", "int8")], r"model.neuron.save_dtype must be one of bfloat16, float16, float32 or none"),
        (
            [("model.neuron.fused", "false"), ("model.neuron.save_dtype", "bfloat16")],
            r"save_dtype applies to the fused LIF only: set --config.model.neuron.fused=true",
        ),
        ([("model.neuron.membrane_kept_every", "0")], r"model.neuron.membrane_kept_every must be a step count >= 1"),
    ],
)
def test_bad_values_name_the_field_and_the_fix(overrides, message):
    with pytest.raises(C.ConfigError, match=message):
        C.validate(O.apply_overrides(C.default_config(), overrides))


def test_defaults_and_overrides_reach_every_lif():
    config = C.default_config()
    assert config.model.neuron.fused is False and config.model.neuron.save_dtype is None
    assert config.model.neuron.membrane_kept_every == 4
    overrides = [("model.neuron.fused", "true"), ("model.neuron.save_dtype", "bfloat16"), ("model.neuron.membrane_kept_every", "1")]
    config = O.apply_overrides(config, overrides)
    C.validate(config)
    model = models.create("small_cnn", variant="bsnn", timesteps=2, input_shape=(8, 8, 3), neuron=config.model.neuron.to_dict(), rngs=0)
    lifs = [node for _, node in nnx.iter_graph(model) if isinstance(node, LIF)]
    assert lifs and all(lif.fused and lif.save_dtype == "bfloat16" and lif.membrane_kept_every == 1 for lif in lifs)


def test_backward_options_do_not_identify_a_run():
    assert not rundir.identifies_run("model.neuron.fused")
    assert not rundir.identifies_run("model.neuron.save_dtype")
    assert not rundir.identifies_run("model.neuron.membrane_kept_every")
    assert rundir.identifies_run("model.neuron.tau")
