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

from bsnn_jax import train
from bsnn_jax.train import config as config_lib
from bsnn_jax.train.loop import CHECKPOINT_DIR, METRICS_FILE, restore

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
    _, state, step = restore(workdir)
    flip_state = state.opt_state.inner_states["binary"].inner_state
    assert step == 88 and int(flip_state.count) == 88 * T
    v = flip_state.second_moment["units"][1]["conv"]["kernel"]
    assert v.shape == (T,) and (np.asarray(v) > 0).all()


def test_kernels_are_exactly_plus_minus_one_in_memory_and_int8_on_disk(reference):
    workdir, _ = reference
    _, state, _ = restore(workdir)
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


def test_stopped_online_run_resumes_exactly(reference, tmp_path, make_config):
    ref_dir, _ = reference
    first = train.fit(make_config(**TBSO), tmp_path, until_step=30, console=QUIET)
    assert first["stopped_early"]
    train.fit(make_config(**TBSO), tmp_path, console=QUIET)
    ours, theirs = _stored(tmp_path), _stored(ref_dir)
    for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(ours)[0], jax.tree.leaves(theirs)):
        np.testing.assert_array_equal(a, b, err_msg=jax.tree_util.keystr(path))
    assert [r["test_accuracy"] for r in _rows(tmp_path)] == [r["test_accuracy"] for r in _rows(ref_dir)]


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
