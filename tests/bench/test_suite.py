"""bsnn bench: the ANN bound's network, the ratios on hand-made records, one real worker run,
and the peers' reference net against ours (when the peers are installed)."""

import json

import jax
import numpy as np
import pytest
from flax import nnx

from bsnn_jax import models
from bsnn_jax.bench import suite, worker
from bsnn_jax.bench.jax_worker import ReLU, relu_instead_of_lif
from bsnn_jax.bench.workloads import WORKLOADS
from bsnn_jax.nn import LIF


def count(model, kind):
    return sum(isinstance(m, kind) for _, m in nnx.iter_graph(model))


def test_ann_bound_replaces_every_lif_by_relu_and_keeps_the_parameters():
    snn = models.create("small_cnn", variant="bsnn", timesteps=1, input_shape=(8, 8, 1), rngs=0)
    ann = models.create("small_cnn", variant="bsnn", timesteps=1, input_shape=(8, 8, 1), rngs=0)
    lifs = count(ann, LIF)
    relu_instead_of_lif(ann)
    assert lifs == 3 and count(ann, LIF) == 0 and count(ann, ReLU) == lifs
    same = jax.tree.map(np.array_equal, nnx.state(snn, nnx.Param), nnx.state(ann, nnx.Param))
    assert all(jax.tree.leaves(same))
    x = np.random.default_rng(0).uniform(-1, 1, (4, 8, 8, 1)).astype(np.float32)
    ann.fc.kernel[...] = np.eye(*ann.fc.kernel.shape, dtype=np.float32)  # logits = the first features
    features = np.asarray(ann(x))[0]
    assert features.min() >= 0 and len(np.unique(features)) > 2  # ReLU outputs, not 0/1 spikes
    with pytest.raises(ValueError, match="no LIF"):
        relu_instead_of_lif(ann)


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
        return {"workload": "w", "step_times_s": times, "step_median_s": float(np.median(times)), "compile_s": compile_s,
                "inference_images_per_s": 10 * compile_s, "peak_rss_bytes": rss, "rss_growth_bytes": None}

    pooled = suite.pool_rounds([record([1.0, 5.0], 2.0, 100), record([2.0, 3.0, 4.0], 4.0, 300), record([6.0], 9.0, 200)])
    assert pooled["step_times_s"] == [1.0, 5.0, 2.0, 3.0, 4.0, 6.0] and pooled["steps"] == 6
    assert pooled["step_median_s"] == 3.5 and pooled["step_min_s"] == 1.0  # of all six times
    assert pooled["round_step_medians_s"] == [3.0, 3.0, 6.0]
    assert pooled["compile_s"] == 4.0 and pooled["inference_images_per_s"] == 40.0  # medians
    assert pooled["peak_rss_bytes"] == 300 and pooled["rss_growth_bytes"] is None
    failed = {"workload": "w", "error": "timed out"}
    assert suite.pool_rounds([record([1.0], 1.0, 1), failed]) == failed


def test_unknown_workload_is_a_clear_error(capsys):
    with pytest.raises(ValueError, match="unknown workload 'nope'"):
        worker.measure("nope", 2)
    assert worker.main(["nope"]) == 2
    assert "unknown workload" in json.loads(capsys.readouterr().out)["error"]
    with pytest.raises(ValueError, match="unknown workloads"):
        suite.run(["nope"])
    with pytest.raises(ValueError, match="rounds"):
        suite.run(["reference_snn_t1"], steps=2, rounds=3)


def test_one_workload_measured_in_its_own_processes(tmp_path):
    result = suite.run(["reference_snn_t1"], steps=4, rounds=2)
    (record,) = result["records"]
    assert "error" not in record, record
    assert len(record["step_times_s"]) == 4 and len(record["round_step_medians_s"]) == 2 and record["step_median_s"] > 0 and record["compile_s"] > 0
    assert record["temp_bytes"] > 0 and record["peak_rss_bytes"] > record["argument_bytes"]
    assert record["inference_images_per_s"] > 0
    json_path, md_path = suite.save(result, tmp_path / "bench")
    assert json.loads(json_path.read_text())["records"][0]["workload"] == "reference_snn_t1"
    assert "| reference_snn_t1 | bsnn_jax | 1 | 32 |" in md_path.read_text()


@pytest.mark.parametrize("framework", ["torch", "snntorch", "spikingjelly"])
def test_peer_reference_net_has_our_parameter_count(framework):
    # The peers come with `make bench` (the bench extra), not with `make test`: CI skips this
    # check, and it runs wherever the peers are installed.
    pytest.importorskip("torch")
    pytest.importorskip({"torch": "torch", "snntorch": "snntorch", "spikingjelly": "spikingjelly.activation_based"}[framework])
    from bsnn_jax.bench import torch_worker

    workload = next(w for w in WORKLOADS.values() if w.framework == framework)
    peer = torch_worker.build(workload)
    ours = models.create("reference", variant="bsnn", timesteps=1, rngs=0)
    ours_count = sum(np.size(v) for v in jax.tree.leaves(nnx.state(ours, nnx.Param)))
    assert sum(p.numel() for p in peer.parameters()) == ours_count
