"""The worker process of one workload: its error record for an unknown name."""

import json

import pytest

from bsnn_jax.bench import worker


def test_unknown_workload_is_a_clear_error(capsys):
    with pytest.raises(ValueError, match="unknown workload 'nope'"):
        worker.measure("nope", 2)
    assert worker.main(["nope"]) == 2
    assert "unknown workload" in json.loads(capsys.readouterr().out)["error"]
