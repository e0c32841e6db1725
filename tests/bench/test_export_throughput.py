"""The export-throughput benchmark on the untrained demo architecture, tiny batches: what it writes."""

import json

from bsnn_jax.bench import export_throughput


def test_writes_images_per_second_of_both_models_and_their_ratio(tmp_path, capsys):
    out = tmp_path / "throughput.json"
    export_throughput.main(["--batch-sizes", "2", "--repeats", "1", "--out", str(out)])
    result = json.loads(out.read_text())
    assert [r["batch_size"] for r in result["rows"]] == [2]
    for r in result["rows"]:
        assert r["float_images_per_s"] > 0 and r["packed_images_per_s"] > 0
        assert r["speedup"] == r["packed_images_per_s"] / r["float_images_per_s"]
    assert result["model"]["name"] == "small_cnn" and result["trained_run"] is None
    assert result["file_bytes"] > result["report_bytes"] > 0  # the packed tensors plus a header
    assert "packed / float" in capsys.readouterr().out
