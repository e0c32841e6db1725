"""The fit/evaluate loop on a tiny real run: metrics.jsonl, exact stop/resume, evaluate, and the
errors that protect a run directory (foreign or damaged checkpoints, NaN loss).

Each ``fit`` compiles its own step (about 10 s here), so the module runs only four of them.
"""

import json
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest
from rich.console import Console

from bsnn_jax import train
from bsnn_jax.train.rundir import CHECKPOINT_DIR, CONFIG_FILE, METRICS_FILE

QUIET = Console(quiet=True)

# A restore that fails half-way leaves tensorstore callbacks for an asyncio loop already closed.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def _params(workdir, step=None):
    """The arrays of a checkpoint as numpy, restored without building a trainer."""
    import orbax.checkpoint as ocp

    with ocp.CheckpointManager(Path(workdir) / CHECKPOINT_DIR, item_names=("state", "meta")) as m:
        step = m.latest_step() if step is None else step
        restored = m.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    return jax.tree.map(np.asarray, restored["state"])


def _snapshot(directory):
    return sorted((str(p.relative_to(directory)), p.stat().st_size, p.stat().st_mtime_ns) for p in Path(directory).rglob("*"))


def _rows(workdir):
    return [json.loads(line) for line in (Path(workdir) / METRICS_FILE).read_text().splitlines()]


@pytest.fixture(scope="module")
def reference(tiny_run):
    """One uninterrupted 2-epoch run of ``make_config()``: conftest's session-wide tiny run."""
    return tiny_run


def test_metrics_jsonl_config_json_and_checkpoints(reference):
    workdir, summary = reference
    rows = _rows(workdir)
    assert [r["epoch"] for r in rows] == [1, 2] and [r["step"] for r in rows] == [44, 88]
    for r in rows:
        for key in ("epoch", "step", "train_loss", "train_accuracy", "test_accuracy", "test_loss", "epoch_seconds", "firing_rate"):
            assert r[key] is not None and np.isfinite(r[key]), key
        assert 0 <= r["test_accuracy"] <= 1 and 0 < r["firing_rate"] < 1
        assert set(r["firing_rates"]) == {"lifs.0", "lifs.1", "lifs.2"}
    # learning happens on this easy set
    assert rows[-1]["test_accuracy"] > 0.5 and rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert summary["test_accuracy"] == rows[-1]["test_accuracy"] and summary["step"] == 88 and not summary["stopped_early"]
    saved = json.loads((workdir / CONFIG_FILE).read_text())
    assert saved["dataset"]["name"] == "digits" and saved["model"]["variant"] == "agmm"
    steps = sorted(int(p.name) for p in (workdir / CHECKPOINT_DIR).iterdir() if p.name.isdigit())
    assert steps == [44, 88]


def test_flip_ratios_and_gradient_statistics(reference):
    workdir, _ = reference
    rows = _rows(workdir)

    # Eq. 8 between the checkpoints of epochs 1 and 2, recomputed from the saved latent kernels
    def kernels(step):
        units = _params(workdir, step)["params"]["units"]
        return {i: np.asarray(units[i]["conv"]["kernel"]) for i in units if str(i) != "0"}  # unit 0: FP stem

    before, after = kernels(44), kernels(88)
    assert len(after) == 2  # small_cnn binarizes units 1 and 2
    flips = sum(int(np.sum((before[k] >= 0) != (after[k] >= 0))) for k in after)
    np.testing.assert_allclose(rows[1]["flip_ratio"], flips / sum(v.size for v in after.values()), rtol=1e-6)
    for r in rows:
        assert 0 < r["flip_ratio"] < 1 and 0 < r["flip_ratio_step"] < 1
        # per step fewer weights flip than over a whole epoch, but the epoch's net count can
        # never exceed the sum of its steps' counts
        assert r["flip_ratio_step"] < r["flip_ratio"] <= r["flip_ratio_step"] * 44
        assert set(r["grad_stats"]) == {"units.1.conv", "units.2.conv"}
        assert all(s["var"] > 0 and np.isfinite(s["mean"]) for s in r["grad_stats"].values())


def test_evaluate_rebuilds_the_model_from_the_workdir(reference):
    workdir, summary = reference
    result = train.evaluate(workdir)
    assert result["step"] == 88
    np.testing.assert_allclose(result["test_accuracy"], summary["test_accuracy"], rtol=1e-6)
    np.testing.assert_allclose(result["test_loss"], summary["test_loss"], rtol=1e-5)
    np.testing.assert_allclose(result["firing_rate"], summary["firing_rate"], rtol=1e-5)
    assert result["model"]["name"] == "small_cnn" and result["model_size_mb"] > 0
    best = train.evaluate(workdir, best=True)
    assert best["step"] == summary["best_step"]


def test_stopped_and_resumed_run_ends_exactly_like_the_uninterrupted_one(reference, tmp_path, make_config):
    ref_dir, _ = reference
    first = train.fit(make_config(), tmp_path, until_step=30, console=QUIET)
    assert first["stopped_early"] and first["step"] == 30
    assert (tmp_path / CHECKPOINT_DIR / "30").is_dir() and not (tmp_path / METRICS_FILE).exists()
    second = train.fit(make_config(), tmp_path, console=QUIET)
    assert second["step"] == 88 and not second["stopped_early"]
    ours, theirs = _params(tmp_path), _params(ref_dir)
    leaves_a, leaves_b = jax.tree_util.tree_flatten_with_path(ours)[0], jax.tree_util.tree_flatten_with_path(theirs)[0]
    assert [p for p, _ in leaves_a] == [p for p, _ in leaves_b]
    for (path, a), (_, b) in zip(leaves_a, leaves_b, strict=True):  # params, BN stats, optimizer state, step, RNG
        np.testing.assert_array_equal(a, b, err_msg=jax.tree_util.keystr(path))
    for mine, ref in zip(_rows(tmp_path), _rows(ref_dir), strict=True):
        for key in (
            "epoch",
            "step",
            "train_loss",
            "train_accuracy",
            "test_loss",
            "test_accuracy",
            "firing_rate",
            "flip_ratio",
            "flip_ratio_step",
        ):
            np.testing.assert_allclose(mine[key], ref[key], rtol=1e-9, err_msg=key)


def test_running_a_finished_run_again_changes_nothing(reference, make_config):
    workdir, summary = reference
    before = _snapshot(workdir)
    again = train.fit(make_config(), workdir, console=QUIET)
    assert again["step"] == 88 and again["test_accuracy"] == summary["test_accuracy"]
    after = _snapshot(workdir)
    assert [x for x in after if x[0] != CONFIG_FILE] == [x for x in before if x[0] != CONFIG_FILE]


@pytest.fixture
def copy_of(reference, tmp_path):
    target = tmp_path / "run"
    shutil.copytree(reference[0], target)
    return target


@pytest.mark.parametrize(
    "overrides, error, message",
    [
        ({"model.variant": "fp"}, train.CheckpointError, r"belongs to a different run: model.variant 'agmm' there, 'fp' here"),
        ({"model.timesteps": 4}, train.CheckpointError, r"model.timesteps 2 there, 4 here"),
        ({"optimizer.name": "adam"}, train.CheckpointError, r"saved arrays differ"),
        ({"batch_size": 16}, train.RunDirectoryError, r"holds a different run \(batch_size: 32 there, 16 now\)"),
    ],
)
def test_a_different_run_in_the_workdir_is_refused_and_left_alone(copy_of, overrides, error, message, make_config):
    before = _snapshot(copy_of)
    with pytest.raises(error, match=message) as info:
        train.fit(make_config(**overrides), copy_of, console=QUIET)
    assert "new --workdir" in str(info.value)
    assert _snapshot(copy_of) == before


def test_a_damaged_checkpoint_is_a_clear_error_and_left_alone(copy_of, make_config):
    for f in (copy_of / CHECKPOINT_DIR / "88" / "state").rglob("*"):
        if f.is_file() and f.stat().st_size > 0 and "ocdbt" in str(f):
            f.write_bytes(b"\0garbage" * 4)
    before = _snapshot(copy_of)
    with pytest.raises(train.CheckpointError, match=r"checkpoint 88 .* cannot be read .*mv .*88.damaged.* resume from step 44"):
        train.fit(make_config(), copy_of, console=QUIET)
    assert _snapshot(copy_of) == before


def test_a_damaged_config_json_is_a_clear_error(copy_of, make_config):
    (copy_of / CONFIG_FILE).write_text("{truncated")
    with pytest.raises(train.RunDirectoryError, match=r"config.json is damaged"):
        train.fit(make_config(), copy_of, console=QUIET)


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(copy_of, make_config):
    # Go back to the end of epoch 1, then diverge: an infinite learning rate (a change the
    # resumed run accepts, like any non-structural one) makes the loss NaN at once.
    shutil.rmtree(copy_of / CHECKPOINT_DIR / "88")
    rows = (copy_of / METRICS_FILE).read_text().splitlines()
    (copy_of / METRICS_FILE).write_text(rows[0] + "\n")
    with pytest.raises(train.NonFiniteLossError, match=r"became (nan|non-finite).* at step 45 .* last good checkpoint is step 44 .*kept"):
        train.fit(make_config(**{"optimizer.learning_rate": float("inf")}), copy_of, console=QUIET)
    steps = sorted(int(p.name) for p in (copy_of / CHECKPOINT_DIR).iterdir() if p.name.isdigit())
    assert steps == [44]
    assert len(_rows(copy_of)) == 1
    assert (copy_of / "config.1.json").exists()  # the run's previous config, kept
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(_params(copy_of)) if np.issubdtype(x.dtype, np.floating))
