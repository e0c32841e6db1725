"""The online-memory benchmark on a tiny network: its output, and the compiler's memory numbers.

Memory is XLA's buffer assignment of the compiled steps (deterministic); no wall-clock time is
asserted. The online steps at T = 3 and T = 5 both run their T-loop as a ``lax.scan``: the same
loop over different lengths. (T = 1 has no loop and carries no membranes or traces from step to
step, so its memory is lower by that fixed amount: see the benchmark's docstring.)
"""

import json

import pytest

from benchmarks import online_memory
from benchmarks.online_memory import Config

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


def peaks(result, method):
    return {r["timesteps"]: r["peak_bytes"] for r in result["records"] if r["method"] == method}


def test_run_writes_json_with_every_method_and_timestep(result, tmp_path):
    json_path, png_path = online_memory.save(result, tmp_path / "out")
    saved = json.loads(json_path.read_text())
    assert png_path.stat().st_size > 0
    assert saved["machine"]["backend"] == "cpu" and saved["machine"]["cpu_count"] >= 1
    assert saved["config"]["timesteps"] == list(TIMESTEPS)
    assert sorted((r["method"], r["timesteps"]) for r in saved["records"]) == sorted(
        (m, t) for m in CONFIG.methods for t in TIMESTEPS
    )
    for r in saved["records"]:
        assert r["peak_bytes"] == r["argument_bytes"] + r["output_bytes"] + r["temp_bytes"] - r["alias_bytes"] > 0
        assert r["compile_s"] > 0 and len(r["step_times_s"]) == 1 and r["median_s"] > 0
    summary = saved["summary"]
    assert summary["t_min"] == 3 and summary["t_max"] == 5
    assert summary["bptt_over_online_at_tmax"] == pytest.approx(peaks(result, "bptt")[5] / peaks(result, "online")[5])
    assert summary["claim_holds"] is True


def test_online_peak_memory_does_not_grow_with_t_while_bptt_does(result):
    online, bptt = peaks(result, "online"), peaks(result, "bptt")
    assert online[5] == pytest.approx(online[3], rel=0.10)
    assert bptt[5] > 1.10 * bptt[3]
    assert bptt[5] > online[5]


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="timesteps"):
        Config(timesteps=(4, 2))
    with pytest.raises(ValueError, match="methods"):
        Config(methods=("bptt", "adjoint"))
    with pytest.raises(ValueError, match="unknown model"):
        Config(model="vgg99")
    with pytest.raises(SystemExit):
        online_memory.parse_config(["--batch-size", "0"])
