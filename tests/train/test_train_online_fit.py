"""``bsnn train`` with train.mode=online and T-BSO on a tiny real run: the schedules count T updates
per batch, the kernels stay exactly +-1 and are stored as int8, and a stopped run resumes exactly.

Each ``fit`` compiles its own online step, so the module runs two of them.
"""

import json
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from rich.console import Console
from train.conftest import restore_training_state  # tests/ is on sys.path (rootdir conftest)

from bsnn_jax import train
from bsnn_jax.train import config as config_lib
from bsnn_jax.train.rundir import CHECKPOINT_DIR, METRICS_FILE

QUIET = Console(quiet=True)
T = 2
TBSO = {
    "model.variant": "bsnn",
    "train.mode": "online",
    "optimizer.binary": "t_bso",
    "optimizer.momentum": 0.0,
    "optimizer.weight_decay": 0.0,
    "optimizer.learning_rate": 0.1,
    "optimizer.flip.decay_every_epochs": 1,  # the BSO code's x0.1 decay, every epoch here
    "loss.name": "tet_mse",
}


def _rows(workdir):
    return [json.loads(line) for line in (Path(workdir) / METRICS_FILE).read_text().splitlines()]


def _stored(workdir, step=None):
    with ocp.CheckpointManager(Path(workdir) / CHECKPOINT_DIR, item_names=("state", "meta")) as m:
        step = m.latest_step() if step is None else step
        return jax.tree.map(np.asarray, m.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"])


def _meta(workdir, step=None):
    with ocp.CheckpointManager(Path(workdir) / CHECKPOINT_DIR, item_names=("state", "meta")) as m:
        step = m.latest_step() if step is None else step
        return m.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, make_config):
    workdir = tmp_path_factory.mktemp("tbso")
    return workdir, train.fit(make_config(**TBSO), workdir, console=QUIET)


def test_t_bso_online_run_learns_with_t_updates_per_batch(reference):
    workdir, summary = reference
    rows = _rows(workdir)
    assert [r["step"] for r in rows] == [44, 88] and summary["test_accuracy"] > 0.5
    for r in rows:
        assert 0 < r["flip_ratio_step"] < 1 and set(r["grad_stats"]) == {"units.1.conv", "units.2.conv"}
    assert 0 < rows[1]["flip_ratio"] < 1
    # the FP side's cosine runs over 88 * T updates and ends at 0; its SGD count says T per batch
    cosine = lambda k: 0.1 * (1 + np.cos(np.pi * k / (88 * T))) / 2  # noqa: E731
    assert [r["learning_rate"] for r in rows] == pytest.approx([cosine(44 * T - 1), cosine(88 * T - 1)], rel=1e-3)
    _, state, step = restore_training_state(workdir)
    flip_state = state.opt_state.inner_states["binary"].inner_state
    assert step == 88 and int(flip_state.count) == 88 * T
    v = flip_state.second_moment["units"][1]["conv"]["kernel"]
    assert v.shape == (T,) and (np.asarray(v) > 0).all()


def test_kernels_are_exactly_plus_minus_one_in_memory_and_int8_on_disk(reference):
    workdir, _ = reference
    state = train.restore(workdir)
    stored = _stored(workdir)
    for i in (1, 2):
        kernel = np.asarray(state.params["units"][i]["conv"]["kernel"])
        assert kernel.dtype == np.float32 and set(np.unique(kernel)) == {-1.0, 1.0}
        on_disk = stored["params"]["units"][str(i)]["conv"]["kernel"]
        assert on_disk.dtype == np.int8
        np.testing.assert_array_equal(on_disk, kernel)
    assert stored["params"]["units"]["0"]["conv"]["kernel"].dtype == np.float32  # the FP stem
    # flipped between the two epochs' checkpoints, and not all of them
    before = _stored(workdir, 44)["params"]["units"]["1"]["conv"]["kernel"]
    changed = np.mean(before != stored["params"]["units"]["1"]["conv"]["kernel"])
    assert 0 < changed < 0.5


TIMINGS = {"epoch_seconds", "train_seconds", "eval_seconds", "time", "seconds"}  # wall clock: never reproducible


def _untimed(tree):
    if isinstance(tree, dict):
        return {k: _untimed(v) for k, v in tree.items() if k not in TIMINGS}
    return [_untimed(v) for v in tree] if isinstance(tree, list) else tree


def test_stopped_online_run_resumes_exactly(reference, tmp_path, make_config):
    """An online T-BSO run stopped mid-epoch and resumed against the uninterrupted one: every
    leaf of the last checkpoint by path and dtype (the +-1 kernels as int8, BN statistics,
    T-BSO's momentum, v[t] and count, step, RNG), the checkpoint's bookkeeping (data
    position, epoch sums, best, last row) and every field of every metrics row but wall-clock
    times. Any state the stop loses, resets or double-counts shows up in one of them."""
    ref_dir, _ = reference
    first = train.fit(make_config(**TBSO), tmp_path, until_step=30, console=QUIET)
    assert first["stopped_early"] and first["step"] == 30 and not (tmp_path / METRICS_FILE).exists()
    train.fit(make_config(**TBSO), tmp_path, console=QUIET)
    ours, theirs = _stored(tmp_path), _stored(ref_dir)
    leaves_a, leaves_b = jax.tree_util.tree_flatten_with_path(ours)[0], jax.tree_util.tree_flatten_with_path(theirs)[0]
    assert [p for p, _ in leaves_a] == [p for p, _ in leaves_b]
    paths = [jax.tree_util.keystr(p) for p, _ in leaves_a]
    for part in (
        "['params']",
        "['model_state']",
        "['opt_state']",
        "['step']",
        "['rng']",
        "second_moment",
        "momentum",
        "['mean']",
        "['var']",
    ):
        assert any(part in p for p in paths), part  # the comparison covers this part of the state
    assert any(a.dtype == np.int8 for _, a in leaves_a)  # the kernels as stored, not decoded
    for (path, a), (_, b) in zip(leaves_a, leaves_b, strict=True):
        assert a.dtype == b.dtype, jax.tree_util.keystr(path)
        np.testing.assert_array_equal(a, b, err_msg=jax.tree_util.keystr(path))
    meta_a, meta_b = _meta(tmp_path), _meta(ref_dir)
    assert meta_a["step"] == meta_b["step"] == 88 and meta_a["data_iterator"] == meta_b["data_iterator"]
    assert _untimed(meta_a) == _untimed(meta_b)
    mine, ref = _rows(tmp_path), _rows(ref_dir)
    assert [set(r) for r in mine] == [set(r) for r in ref] and len(ref) == 2
    assert {"train_loss", "learning_rate", "flip_ratio_step", "grad_stats", "test_loss", "firing_rates"} <= set(ref[0])
    assert [_untimed(r) for r in mine] == [_untimed(r) for r in ref]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"optimizer.binary": "t_bso"}, "needs online training"),
        ({"optimizer.binary": "bso", "model.variant": "fp"}, "has none; use variant bsnn or agmm"),
        ({"train.mode": "online", "loss.firing_rate_weight": 0.1}, "online training does not keep"),
        ({"train.mode": "offline"}, "unknown training mode 'offline'"),
        ({"optimizer.binary": "adam"}, "unknown binary training 'adam'"),
    ],
)
def test_impossible_combinations_are_clear_errors(overrides, message, make_config):
    with pytest.raises(config_lib.ConfigError, match=message):
        config_lib.validate(make_config(**overrides))
