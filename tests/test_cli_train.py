"""``bsnn train`` / ``bsnn evaluate`` end to end on sklearn digits, with config_flags-style overrides."""

import json

import pytest

from bsnn_jax import cli

DEMO = "demo"  # a name of bsnn_jax.configs
TINY = [
    "--config.dataset.name=digits",
    "--config.dataset.num_threads", "1",
    "--config.num_epochs=1",
    "--config.batch_size=32",
    "--config.eval_batch_size=120",
    "--config.mesh.num_devices=1",
    "--config.optimizer.learning_rate=0.05",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("cli") / "run"
    code = cli.main(["train", "--config", DEMO, "--workdir", str(workdir), *TINY])
    return code, workdir


def test_train_writes_metrics_config_and_checkpoint(trained, capsys):
    code, workdir = trained
    assert code == 0
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1
    row = rows[0]
    assert row["epoch"] == 1 and row["step"] == 1437 // 32
    for key in ("train_loss", "train_accuracy", "test_accuracy", "test_loss", "epoch_seconds"):
        assert isinstance(row[key], float)
    config = json.loads((workdir / "config.json").read_text())
    assert config["dataset"]["name"] == "digits" and config["batch_size"] == 32 and config["model"]["name"] == "small_cnn"
    assert (workdir / "checkpoints" / str(row["step"])).is_dir()


def test_evaluate_prints_the_checkpoint_score(trained, capsys):
    _, workdir = trained
    capsys.readouterr()
    assert cli.main(["evaluate", "--workdir", str(workdir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    row = json.loads((workdir / "metrics.jsonl").read_text().splitlines()[-1])
    assert result["step"] == row["step"] and abs(result["test_accuracy"] - row["test_accuracy"]) < 1e-9
    assert cli.main(["evaluate", "--workdir", str(workdir)]) == 0
    assert "test accuracy" in capsys.readouterr().out


def test_train_again_resumes_from_the_workdir_config(trained, capsys):
    _, workdir = trained
    lines = (workdir / "metrics.jsonl").read_text()
    # no --config: the run's own config.json; the run is finished, so nothing more happens
    assert cli.main(["train", "--workdir", str(workdir)]) == 0
    assert (workdir / "metrics.jsonl").read_text() == lines


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config.optimizer.lr=0.1"], "unknown config key 'optimizer.lr'"),
        (["--config.model.name=resnet20"], "unknown model 'resnet20' (model.name)"),
        (["--config.dataset.name=mnist"], "unknown dataset 'mnist' (dataset.name)"),
        (["--config.num_epochs=two"], "expected int"),
    ],
)
def test_bad_configs_fail_with_a_clear_message(tmp_path, capsys, args, message):
    assert cli.main(["train", "--config", DEMO, "--workdir", str(tmp_path / "w"), *args]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and message in " ".join(err.split())


def test_missing_config_and_workdir_errors(tmp_path, capsys):
    assert cli.main(["train", "--workdir", str(tmp_path)]) == 2
    assert "--config is required" in capsys.readouterr().err
    assert cli.main(["train", "--config", str(tmp_path / "nope.py"), "--workdir", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["evaluate", "--workdir", str(tmp_path / "empty")]) == 2
    assert "not a bsnn train workdir" in " ".join(capsys.readouterr().err.split())
    with pytest.raises(SystemExit):
        cli.main(["evaluate", "--workdir", str(tmp_path), "--config.seed=1"])


def test_report_subcommand_still_works(capsys):
    assert cli.main(["report", "--model", "small_cnn", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "small_cnn"


def test_report_of_a_trained_run_adds_measured_sops_and_energy(trained, capsys):
    _, workdir = trained
    assert cli.main(["report", "--workdir", str(workdir), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    measured = data["measured"]
    layers = measured["layers"]
    # SOPs and MACs recomputed from the per-layer figures (T = 2 in the demo recipe)
    sops = sum(2 * l["input_rate"] * l["macs_per_step"] for l in layers.values() if l["spike_input"])
    macs = sum(2 * l["macs_per_step"] for l in layers.values() if not l["spike_input"])
    assert measured["sops"] == pytest.approx(sops) and measured["macs"] == pytest.approx(macs)
    energies = list(measured["energy_mj"].values())
    assert energies[0] == pytest.approx((4.6e-12 * macs + 0.9e-12 * sops) * 1e3)
    assert energies[1] == pytest.approx((1.666e-12 * macs + 0.380e-12 * sops) * 1e3)
    assert data["total_params"] > 0 and set(measured["firing_rates"]) == {"lifs.0", "lifs.1", "lifs.2"}
    assert cli.main(["report", "--workdir", str(workdir), "--max-examples", "100"]) == 0
    assert "AGMM Table 2 fit" in capsys.readouterr().out


def test_landscape_writes_png_and_grid_without_overwriting(trained, capsys):
    import numpy as np

    _, workdir = trained
    args = ["landscape", "--workdir", str(workdir), "--resolution", "3", "--examples", "64"]
    assert cli.main(args) == 0 and cli.main(args) == 0
    grids = sorted(workdir.glob("landscape-step*.npz"))
    assert len(grids) == 2 and len(list(workdir.glob("landscape-step*.png"))) == 2
    with np.load(grids[0]) as f:
        assert f["loss"].shape == (3, 3) and np.all(np.isfinite(f["loss"]))
        # the centre of the grid is the checkpoint itself, whatever the directions
        with np.load(grids[1]) as g:
            assert f["loss"][1, 1] == pytest.approx(g["loss"][1, 1], rel=1e-5)


def test_report_needs_a_model_or_a_workdir(capsys):
    assert cli.main(["report"]) == 2
    assert "--model NAME" in capsys.readouterr().err
