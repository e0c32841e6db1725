"""bsnn bench's suite: the ratios on hand-made records, pooled rounds, its errors, and one real
workload measured in its own processes."""

import json

import numpy as np
import pytest

from bsnn_jax.bench import suite


def test_ratios_and_targets_from_records():
    records = [
        {"workload": "reference_snn_t4", "step_median_s": 1.0, "peak_rss_bytes": 900},
        {"workload": "snntorch_snn_t4", "step_median_s": 2.0, "peak_rss_bytes": 1000},
        {"workload": "torch_ann_t4", "step_median_s": 1.1},
        {"workload": "spikingjelly_snn_t4", "step_median_s": 1.5, "peak_rss_bytes": 800},
        {"workload": "reference_snn_t1", "step_median_s": 0.1},
        {"workload": "reference_snn_t8", "error": "timed out"},
        {"workload": "resnet19_agmm_t4", "step_median_s": 9.0, "compile_s": 31.0},
    ]
    got = {r["name"]: r for r in suite.ratios(records)}
    assert got["reference step / snnTorch step (T=4)"]["value"] == pytest.approx(0.5)
    assert got["reference step / snnTorch step (T=4)"]["met"] is True  # 0.5 <= 0.67
    assert got["reference step / PyTorch ANN bound step (T=4)"]["met"] is False  # 0.91 > 0.8
    assert got["reference peak RSS / SpikingJelly peak RSS (T=4)"]["value"] == pytest.approx(1.125)
    assert got["reference peak RSS / SpikingJelly peak RSS (T=4)"]["met"] is False
    assert got["reference step / SpikingJelly step (T=4)"]["met"] is None  # no target
    assert got["resnet19_agmm_t4 compile time (s)"]["met"] is False
    assert "reference step T=8 / T=1" not in got  # T=8 failed: no ratio from it
    table = suite.markdown({"records": [], "ratios": list(got.values())})
    assert "| reference step / snnTorch step (T=4) | 0.50 | <= 0.67 | yes |" in table


def test_rounds_pool_their_step_times_and_keep_the_worst_memory():
    def record(times, compile_s, rss):
        return {
            "workload": "w",
            "step_times_s": times,
            "step_median_s": float(np.median(times)),
            "compile_s": compile_s,
            "inference_images_per_s": 10 * compile_s,
            "peak_rss_bytes": rss,
            "rss_growth_bytes": None,
        }

    pooled = suite.pool_rounds([record([1.0, 5.0], 2.0, 100), record([2.0, 3.0, 4.0], 4.0, 300), record([6.0], 9.0, 200)])
    assert pooled["step_times_s"] == [1.0, 5.0, 2.0, 3.0, 4.0, 6.0] and pooled["steps"] == 6
    assert pooled["step_median_s"] == 3.5 and pooled["step_min_s"] == 1.0  # of all six times
    assert pooled["round_step_medians_s"] == [3.0, 3.0, 6.0]
    assert pooled["compile_s"] == 4.0 and pooled["inference_images_per_s"] == 40.0  # medians
    assert pooled["peak_rss_bytes"] == 300 and pooled["rss_growth_bytes"] is None
    failed = {"workload": "w", "error": "timed out"}
    assert suite.pool_rounds([record([1.0], 1.0, 1), failed]) == failed


def test_one_workload_measured_in_its_own_processes(tmp_path):
    # One round (one process): pooling rounds is checked on records above.
    result = suite.run(["reference_snn_t1"], steps=2, rounds=1)
    (record,) = result["records"]
    assert "error" not in record, record
    assert len(record["step_times_s"]) == 2 and len(record["round_step_medians_s"]) == 1
    assert record["step_median_s"] > 0 and record["compile_s"] > 0
    assert record["temp_bytes"] > 0 and record["peak_rss_bytes"] > record["argument_bytes"]
    assert record["inference_images_per_s"] > 0
    json_path, md_path = suite.save(result, tmp_path / "bench")
    assert json.loads(json_path.read_text())["records"][0]["workload"] == "reference_snn_t1"
    assert "| reference_snn_t1 | bsnn_jax | 1 | 32 |" in md_path.read_text()


def test_unknown_workloads_and_bad_rounds_are_clear_errors():
    with pytest.raises(ValueError, match="unknown workloads"):
        suite.run(["nope"])
    with pytest.raises(ValueError, match="rounds"):
        suite.run(["reference_snn_t1"], steps=2, rounds=3)
