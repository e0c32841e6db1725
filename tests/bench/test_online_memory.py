"""The online-memory benchmark on a tiny network: its output, and the compiler's memory numbers.

Memory is XLA's buffer assignment of the compiled steps (deterministic); no wall-clock time is
asserted. The online steps at T = 3 and T = 5 both run their T-loop as a ``lax.scan``: the same
loop over different lengths. (T = 1 has no loop and carries no membranes or traces from step to
step, so its memory is lower by that fixed amount: see the benchmark's docstring.)
"""

import json

import jax
import numpy as np
import optax
import pytest
from flax import nnx

from bsnn_jax.bench import online_memory
from bsnn_jax.bench.online_memory import Config
from bsnn_jax.nn import BinaryParam
from bsnn_jax.optim import FlipState

TIMESTEPS = (3, 5)
CONFIG = Config(
    model="small_cnn",
    input_shape=(8, 8, 1),
    batch_size=8,  # enough activations for BPTT's growth with T to show over fixed buffers
    timesteps=TIMESTEPS,
    repeats=1,
    methods=("bptt", "online"),
)


@pytest.fixture(scope="module")
def result():
    """Compiles (and runs) every step once for the whole module."""
    return online_memory.run(CONFIG)


def states(opt_state, kind):
    """The optimizer states of type ``kind`` inside ``opt_state``."""
    found = jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, kind))
    return [x for x in found if isinstance(x, kind)]


def one_step(method, timesteps=3):
    """The benchmark's training of ``method``, its parameters before, and its state after one step."""
    training = online_memory.build_step(method, timesteps, CONFIG)
    before = jax.tree.map(np.array, training.state.params)  # copied: the step donates the state
    state, _ = training.step(training.state, online_memory.make_batch(CONFIG))
    return training, before, state


def peaks(result, method):
    return {r["timesteps"]: r["peak_bytes"] for r in result["records"] if r["method"] == method}


def test_run_writes_json_with_every_method_and_timestep(result, tmp_path):
    json_path, png_path = online_memory.save(result, tmp_path / "out")
    saved = json.loads(json_path.read_text())
    assert png_path.stat().st_size > 0
    assert saved["machine"]["backend"] == "cpu" and saved["machine"]["cpu_count"] >= 1
    assert saved["config"]["timesteps"] == list(TIMESTEPS)
    assert sorted((r["method"], r["timesteps"]) for r in saved["records"]) == sorted((m, t) for m in CONFIG.methods for t in TIMESTEPS)
    for r in saved["records"]:
        assert r["peak_bytes"] == r["argument_bytes"] + r["output_bytes"] + r["temp_bytes"] - r["alias_bytes"] > 0
        assert r["compile_s"] > 0 and len(r["step_times_s"]) == 1 and r["median_s"] > 0
    summary = saved["summary"]
    assert summary["t_min"] == 3 and summary["t_max"] == 5
    assert summary["bptt_over_online_at_tmax"] == pytest.approx(peaks(result, "bptt")[5] / peaks(result, "online")[5])
    assert summary["claim_holds"] is True
    (growth,) = summary["step_ratios"]["bptt"]
    times = {r["timesteps"]: r["median_s"] for r in saved["records"] if r["method"] == "bptt"}
    assert growth == {"from": 3, "to": 5, "ratio": pytest.approx(times[5] / times[3])}


def test_online_peak_memory_does_not_grow_with_t_while_bptt_does(result):
    online, bptt = peaks(result, "online"), peaks(result, "bptt")
    assert online[5] == pytest.approx(online[3], rel=0.10)
    assert bptt[5] > 1.10 * bptt[3]
    assert bptt[5] > online[5]


def test_lif_choices_reach_the_neuron_config():
    neuron = lambda lif: online_memory.train_config("bptt", 8, Config(**{**CONFIG.__dict__, "lif": lif})).model.neuron  # noqa: E731
    assert neuron("autodiff").unroll is True and neuron("autodiff").membrane_kept_every == 4
    assert neuron("rolled_chunks").unroll is not True and neuron("rolled_chunks").unroll == 1  # True == 1 in Python
    assert neuron("every_step").membrane_kept_every == 1
    assert neuron("fused_bf16").fused and neuron("fused_bf16").save_dtype == "bfloat16"


def test_interleaved_rounds_alternate_and_ratios_are_medians_of_per_round_ratios():
    calls = []
    pending = [({"method": "bptt", "timesteps": t}, lambda t=t: calls.append(t)) for t in (2, 4, 8)]
    online_memory.time_in_rounds(pending, 3, log=lambda line: None)
    assert calls == [2, 4, 8, 8, 4, 2, 2, 4, 8]
    assert all(len(record["step_times_s"]) == 3 and record["median_s"] is not None for record, _ in pending)
    # Round times where the median of the per-round ratios (2 / 1, 6 / 3, 6 / 2: 2) differs from
    # the ratio of the medians (6 / 2 = 3).
    records = [
        {"method": "bptt", "timesteps": 4, "step_times_s": [1.0, 3.0, 2.0], "median_s": 2.0},
        {"method": "bptt", "timesteps": 8, "step_times_s": [2.0, 6.0, 6.0], "median_s": 6.0},
        {"method": "bptt", "timesteps": 16, "median_s": None},  # not timed
    ]
    assert online_memory.step_ratios(records, "bptt", interleaved=True) == [{"from": 4, "to": 8, "ratio": 2.0}]
    assert online_memory.step_ratios(records, "bptt", interleaved=False) == [{"from": 4, "to": 8, "ratio": 3.0}]
    config, _ = online_memory.parse_config(["--interleave", "--methods", "bptt"])
    assert config.interleave and not Config().interleave


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="timesteps"):
        Config(timesteps=(4, 2))
    with pytest.raises(ValueError, match="methods"):
        Config(methods=("bptt", "adjoint"))
    with pytest.raises(ValueError, match="unknown model"):
        Config(model="vgg99")
    with pytest.raises(ValueError, match="unknown lif"):
        Config(lif="adjoint")
    with pytest.raises(SystemExit):
        online_memory.parse_config(["--batch-size", "0"])


@pytest.fixture(scope="module")
def bptt_step():
    """``one_step("bptt")`` (CONFIG's autodiff LIF), compiled once for the tests that read it."""
    return one_step("bptt")


def test_bptt_step_with_the_fused_lif_equals_the_autodiff_one(bptt_step):
    # The same step differentiated both ways (--lif fused / autodiff) moves the weights alike.
    assert CONFIG.lif == "autodiff"
    config = Config(**{**CONFIG.__dict__, "lif": "fused"})
    training = online_memory.build_step("bptt", 3, config)
    state, _ = training.step(training.state, online_memory.make_batch(config))
    after = {"fused": jax.tree.leaves(state.params), "autodiff": jax.tree.leaves(bptt_step[2].params)}
    moved = 0
    for a, b in zip(after["fused"], after["autodiff"], strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
        moved += a.size
    assert moved > 1000


def test_bptt_step_is_sgd_with_momentum_at_0_1_on_latent_weights(bptt_step):
    training, before, state = bptt_step
    (momentum,) = states(state.opt_state, optax.TraceState)
    (schedule,) = states(state.opt_state, optax.ScaleByScheduleState)
    assert int(schedule.count) == 1
    # First step of SGD with momentum: the trace is the gradient, the update -0.1 times it.
    expected = jax.tree.map(lambda p, g: p - 0.1 * g, before, momentum.trace)
    assert all(jax.tree.leaves(jax.tree.map(lambda a, b: np.allclose(a, b, atol=1e-6), state.params, expected)))
    kernels = jax.tree.leaves(nnx.state(training.defs.model(state.params, state.model_state), BinaryParam))
    assert kernels and not all(set(np.unique(k)) <= {-1.0, 1.0} for k in kernels)  # latent, real-valued


def test_online_step_flips_pm1_kernels_by_t_bso_and_updates_after_every_time_step():
    training, _, state = one_step("online", timesteps=3)
    (flip,) = states(state.opt_state, FlipState)
    (schedule,) = states(state.opt_state, optax.ScaleByScheduleState)
    assert int(flip.count) == 3 and int(schedule.count) == 3  # one update per time step
    assert {v.shape for v in jax.tree.leaves(flip.second_moment)} == {(3,)}  # T-BSO's v[t]
    assert not states(state.opt_state, optax.TraceState)  # the full-precision SGD has no momentum
    kernels = jax.tree.leaves(nnx.state(training.defs.model(state.params, state.model_state), BinaryParam))
    assert kernels and all(set(np.unique(k)) <= {-1.0, 1.0} for k in kernels)


def test_online_t_loop_is_one_scan_unless_unrolled():
    def loops(method, timesteps):
        training = online_memory.build_step(method, timesteps, CONFIG)
        return training.step.lower(training.state, online_memory.make_batch(CONFIG)).as_text().count("stablehlo.while")

    assert loops("online", 2) == loops("online", 3)  # the same loop over another length
    assert loops("online_unrolled", 2) < loops("online_unrolled", 3)  # the body written out per step
