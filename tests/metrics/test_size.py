import json

import pytest
from flax import nnx

from bsnn_jax import cli, models
from bsnn_jax.metrics import model_size


def size(name, variant, num_classes, timesteps=2):
    return model_size(nnx.eval_shape(lambda: models.create(name, variant=variant, num_classes=num_classes, timesteps=timesteps)))


def test_resnet19_fp_matches_agmm_paper():
    report = size("resnet19", "fp", 100)
    assert report.total_params == 12_615_396
    assert round(report.size_mb, 2) == 50.46
    assert report.binary_params == 0


def test_resnet19_agmm_is_2_46_mb():
    report = size("resnet19", "agmm", 100)
    assert round(report.size_mb, 2) == 2.46
    # 16 binary 3x3 convs at 1 bit: 884,736 + 3,244,032 + 8,257,536 weights
    assert report.binary_params == 12_386_304
    # everything else at 32 bits, plus 16 AGMM modules x T alphas
    assert report.total_params - report.binary_params == 229_092 + 16 * 2


@pytest.mark.parametrize(
    "variant, num_classes, mb",
    [("bsnn", 10, 1.20), ("bsnn", 100, 1.39), ("fp", 10, 36.91), ("fp", 100, 37.10)],
)
def test_vgg11_matches_bso_paper(variant, num_classes, mb):
    assert round(size("vgg11", variant, num_classes).size_mb, 2) == mb


def test_report_rows_sum_to_totals_and_exclude_running_stats():
    report = size("small_cnn", "agmm", 10)
    assert sum(r.params for r in report.rows) == report.total_params
    assert not any(r.path.endswith(("mean", "var")) for r in report.rows)
    assert report.total_bytes == sum(r.params * r.bits / 8 for r in report.rows)


def test_cli_report_json_and_table(capsys):
    assert cli.main(["report", "--model", "resnet19", "--variant", "fp", "--num-classes", "100", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total_params"] == 12_615_396 and round(data["size_mb"], 2) == 50.46
    assert cli.main(["report", "--model", "small_cnn", "--variant", "agmm"]) == 0
    out = capsys.readouterr().out
    assert "units.1.conv.kernel" in out and "MB" in out


def test_cli_rejects_unknown_model():
    with pytest.raises(SystemExit):
        cli.main(["report", "--model", "resnet20"])
