"""The convolution-rate benchmark on a tiny shape: the record it writes and the FLOP count it divides by."""

import json

import pytest

from bsnn_jax.bench import conv_rates


def test_rates_of_each_kernel_from_the_convolutions_flop_count(tmp_path, monkeypatch):
    result = conv_rates.run(shapes=((2, 4, 3, 5),), repeats=1)
    (record,) = result["convs"]
    assert record["gflop"] == pytest.approx(2 * 2 * 4 * 4 * 9 * 3 * 5 / 1e9)  # 2 * outputs * taps * C_in * C_out
    for kernel in ("forward", "input_grad", "weight_grad", "matmul"):
        assert record[kernel]["gflop_per_s"] == pytest.approx(record["gflop"] / record[kernel]["median_s"])
    assert result["total_s"]["forward"] == record["forward"]["median_s"]
    monkeypatch.setattr(conv_rates, "REFERENCE_CONVS", ((2, 4, 3, 5),))
    conv_rates.main(["--repeats", "1", "--out", str(tmp_path / "rates.json")])
    saved = json.loads((tmp_path / "rates.json").read_text())
    assert saved["convs"][0]["shape"] == {"batch": 2, "size": 4, "in": 3, "out": 5}
