"""``bsnn train`` / ``bsnn evaluate`` end to end on sklearn digits, with config_flags-style overrides."""

import json
import re

import pytest

from bsnn_jax import cli

DEMO = "demo"  # a name of bsnn_jax.configs
TINY = [
    "--config.dataset.name=digits",
    "--config.dataset.num_threads",
    "1",
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
    sops = sum(2 * layer["input_rate"] * layer["macs_per_step"] for layer in layers.values() if layer["spike_input"])
    macs = sum(2 * layer["macs_per_step"] for layer in layers.values() if not layer["spike_input"])
    assert measured["sops"] == pytest.approx(sops) and measured["macs"] == pytest.approx(macs)
    energies = list(measured["energy_mj"].values())
    assert energies[0] == pytest.approx((4.6e-12 * macs + 0.9e-12 * sops) * 1e3)
    assert energies[1] == pytest.approx((1.666e-12 * macs + 0.380e-12 * sops) * 1e3)
    assert data["total_params"] > 0 and set(measured["firing_rates"]) == {"lifs.0", "lifs.1", "lifs.2"}
    assert cli.main(["report", "--workdir", str(workdir), "--max-examples", "100"]) == 0
    assert "AGMM Table 2 fit" in capsys.readouterr().out


def own_tet_loss(workdir, examples):
    """The checkpoint's TET loss on the first ``examples`` digits test images, computed here.

    The restored model object from ``train.restore`` is called directly (BatchNorm on its
    running statistics); the inputs come from sklearn, standardized with the training split's
    pixel statistics (test_data_builtin checks that recipe), and TET = 1/T sum_t CE(out_t, y) is
    written with log_softmax, so neither the landscape code, the loader nor the library's losses
    are involved.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np
    from flax import nnx
    from sklearn.datasets import load_digits

    from bsnn_jax.train import restore

    restored = restore(workdir)
    assert restored.config.loss.name == "tet"
    model = restored.model
    model.eval()
    bunch = load_digits()
    pixels = bunch.images / 16.0
    train = pixels[:1437]
    x = ((pixels[1437 : 1437 + examples] - train.mean()) / train.std())[..., None].astype(np.float32)
    y = jnp.asarray(bunch.target[1437 : 1437 + examples])
    logits = nnx.jit(lambda m, v: m(v))(model, jnp.asarray(x))  # [T, B, K]
    assert logits.shape == (2, examples, 10)
    log_p = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    picked = jnp.take_along_axis(log_p, jnp.broadcast_to(y[None, :, None], (2, examples, 1)), axis=-1)
    return float(-jnp.mean(picked))


def test_landscape_centre_is_the_checkpoint_loss(trained, capsys):
    """Two landscapes with different direction seeds: the centre of each grid must equal the
    checkpoint's loss on the same 64 test examples as computed by own_tet_loss."""
    import numpy as np

    _, workdir = trained
    args = ["landscape", "--workdir", str(workdir), "--resolution", "3", "--examples", "64"]
    assert cli.main([*args, "--seed", "0"]) == 0 and cli.main([*args, "--seed", "1"]) == 0
    grids = sorted(workdir.glob("landscape-step*.npz"))  # the second is written next to the first
    assert len(grids) == 2 and len(list(workdir.glob("landscape-step*.png"))) == 2
    expected = own_tet_loss(workdir, 64)
    with np.load(grids[0]) as f, np.load(grids[1]) as g:
        assert {int(f["seed"]), int(g["seed"])} == {0, 1} and int(f["examples"]) == int(g["examples"]) == 64
        for grid in (f, g):
            assert grid["loss"].shape == (3, 3) and np.all(np.isfinite(grid["loss"]))
            np.testing.assert_allclose(grid["coords"], [-1.0, 0.0, 1.0])
            assert grid["loss"][1, 1] == pytest.approx(expected, rel=1e-5)
        # the seeds did give different directions, so the agreement above is not one grid twice
        off_centre = np.ones((3, 3), bool)
        off_centre[1, 1] = False
        assert not np.allclose(f["loss"][off_centre], g["loss"][off_centre], rtol=1e-3)
    printed = [float(v) for v in re.findall(r"\(loss ([0-9.]+) at the checkpoint", capsys.readouterr().out)]
    assert printed == [pytest.approx(expected, abs=1.5e-4)] * 2


def test_report_needs_a_model_or_a_workdir(capsys):
    assert cli.main(["report"]) == 2
    assert "--model NAME" in capsys.readouterr().err
