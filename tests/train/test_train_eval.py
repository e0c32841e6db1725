"""Evaluation over a test split whose last batch is padded, and the run-level knobs that decide
when a run evaluates and checkpoints (``eval_every_epochs``, ``checkpoint.every_steps``,
``checkpoint.keep_best``), on one shared tiny run.

The run: sklearn digits (360 test records, eval batches of 128: 128 + 128 + 104 padded to 128),
4 "epochs" of 20 steps, test metrics every 2nd epoch, a checkpoint every 10 steps, all kept.
It compiles one training and one evaluation step; the keep_best test resumes a copy once more.
"""

import json
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from rich.console import Console

from bsnn_jax import train
from bsnn_jax.metrics import run_with_spikes
from bsnn_jax.train.evaluation import eval_split
from bsnn_jax.train.rundir import CHECKPOINT_DIR, METRICS_FILE

QUIET = Console(quiet=True)
N_TEST = 360
KNOBS = {"steps_per_epoch": 20, "num_epochs": 4, "eval_every_epochs": 2, "checkpoint.every_steps": 10, "checkpoint.keep": 100}


def _rows(workdir):
    return [json.loads(line) for line in (Path(workdir) / METRICS_FILE).read_text().splitlines()]


def _steps_on_disk(workdir):
    return sorted(int(p.name) for p in (Path(workdir) / CHECKPOINT_DIR).iterdir() if p.name.isdigit())


def digits_test_split():
    """The test split rebuilt from scikit-learn directly, not through bsnn_jax.data: the last 20%
    (360) of load_digits in its fixed order, pixels / 16 standardised with the training part's
    mean and std, as the README's `digits` dataset describes."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.astype(np.float64)[..., None] / 16
    n_train = len(bunch.target) - N_TEST
    train_part = images[:n_train]
    x = (images[n_train:] - train_part.mean()) / train_part.std()
    return x.astype(np.float32), bunch.target[n_train:].astype(np.int32)


def numpy_scores(logits, labels):
    """Per record: the TET loss (1/T sum_t cross-entropy, the configs' default loss) and whether
    the argmax of the mean over T of the logits is the label; in float64 numpy."""
    z = np.asarray(logits, np.float64)  # [T, B, K]
    z = z - z.max(-1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
    loss = -log_p[:, np.arange(len(labels)), labels].mean(0)
    correct = np.asarray(logits, np.float64).mean(0).argmax(-1) == labels
    return loss, correct


def per_record_rates(spikes):
    """{layer: per-record spike rate [B]} and the per-record rate over every LIF neuron [B]."""
    rates, total, neurons = {}, 0.0, 0
    for name, s in spikes.items():
        s = np.swapaxes(np.asarray(s, np.float64), 0, 1).reshape(s.shape[1], -1)  # [B, T*H*W*C]
        rates[name] = s.mean(1)
        total, neurons = total + s.sum(1), neurons + s.shape[1]
    return rates, total / neurons


@pytest.fixture(scope="module")
def knob_run(tmp_path_factory, make_config):
    workdir = tmp_path_factory.mktemp("knob_run")
    summary = train.fit(make_config(**KNOBS), workdir, console=QUIET)
    return workdir, summary


@pytest.fixture(scope="module")
def restored(knob_run):
    """The last checkpoint of the run (``train.restore``: its model for inference), its step, and
    a jitted forward that returns the logits and every LIF layer's spikes."""
    run = train.restore(knob_run[0])
    forward = jax.jit(lambda params, model_state, x: run_with_spikes(run.defs.model(params, model_state), x))
    return run, run.step, lambda x: jax.device_get(forward(run.params, run.model_state, jnp.asarray(x)))


def test_whole_test_split_scored_outside_the_library_matches_evaluate_and_metrics(knob_run, restored):
    """Loss, accuracy and firing rates of the restored model on all 360 test records in one batch
    (no padding anywhere), scored in numpy, equal what ``train.evaluate`` reports through its
    padded batches and what the run wrote to metrics.jsonl for that step."""
    workdir, _ = knob_run
    run, step, forward = restored
    assert step == 80 and eval_split(run.dataset, run.config).batch_per_host == 128 and N_TEST % 128 == 104  # the last batch is padded
    x, y = digits_test_split()
    logits, spikes = forward(x)
    loss, correct = numpy_scores(logits, y)
    rates, overall = per_record_rates(spikes)
    assert 0.5 < correct.mean() < 1  # a trained model, so padding mistakes cannot hide in chance level

    reported = train.evaluate(workdir)
    row = _rows(workdir)[-1]
    assert reported["step"] == row["step"] == 80
    for result in (reported, row):
        # exact counts: one record more or less moves the accuracy by 1/360
        assert round(result["test_accuracy"] * N_TEST) == correct.sum()
        np.testing.assert_allclose(result["test_accuracy"], correct.mean(), rtol=1e-12)
        np.testing.assert_allclose(result["test_loss"], loss.mean(), rtol=1e-5)
        np.testing.assert_allclose(result["firing_rate"], overall.mean(), rtol=1e-5)
        assert result["firing_rates"].keys() == rates.keys()
        for name, r in rates.items():
            np.testing.assert_allclose(result["firing_rates"][name], r.mean(), rtol=1e-5, atol=1e-9, err_msg=name)


def test_padded_rows_with_wrong_labels_and_garbage_inputs_count_for_nothing(restored):
    """The evaluation step on a 128-row batch: 100 real test records, then 28 rows of garbage
    input (50x the data's scale) with mask 0, half labelled wrongly and half with the model's own
    prediction. Its sums equal the numpy scores of the 100 real records alone."""
    run, _, forward = restored
    x, y = digits_test_split()
    real = 100
    garbage = (np.random.default_rng(0).normal(size=(128 - real,) + x.shape[1:]) * 50).astype(np.float32)
    images = np.concatenate([x[:real], garbage])
    logits, spikes = forward(images)
    predicted = np.asarray(logits).mean(0).argmax(-1)[real:]
    labels = np.concatenate([y[:real], (predicted[:14] + 1) % 10, predicted[14:]]).astype(np.int32)
    mask = (np.arange(128) < real).astype(np.float32)

    loss, correct = numpy_scores(logits, labels)
    rates, overall = per_record_rates(spikes)
    # the padded rows would change every sum if they were counted
    assert loss[real:].sum() > 1 and correct[real:].sum() >= 14 and overall[real:].sum() > 0.1 * overall[:real].sum()

    eval_step = train.make_eval_step(run.defs, loss=run.config.loss.name, firing_rates=True)
    out = jax.device_get(eval_step(run.params, run.model_state, {"image": images, "label": labels, "mask": mask}))
    assert float(out["count"]) == real
    assert float(out["correct"]) == correct[:real].sum()
    np.testing.assert_allclose(out["loss"], loss[:real].sum(), rtol=1e-5)
    np.testing.assert_allclose(out["spikes/all"], overall[:real].sum(), rtol=1e-5)
    for name, r in rates.items():
        np.testing.assert_allclose(out[f"spikes/{name}"], r[:real].sum(), rtol=1e-5, atol=1e-9, err_msg=name)


def test_eval_every_epochs_puts_test_metrics_on_every_second_epoch_only(knob_run):
    """eval_every_epochs=2 over 4 epochs: test loss, accuracy and firing rates in the rows of
    epochs 2 and 4, None or absent in those of epochs 1 and 3."""
    workdir, summary = knob_run
    rows = _rows(workdir)
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4] and [r["step"] for r in rows] == [20, 40, 60, 80]
    for r in rows:
        evaluated = r["epoch"] % 2 == 0
        assert (r["test_accuracy"] is not None) == evaluated and (r["test_loss"] is not None) == evaluated, r["epoch"]
        assert ("firing_rate" in r) == evaluated and ("eval_seconds" in r) == evaluated, r["epoch"]
    assert summary["best_step"] in (40, 80)


def test_checkpoint_every_steps_saves_exactly_at_its_multiples(knob_run):
    """checkpoint.every_steps=10 with 20-step epochs and every checkpoint kept: the steps on disk
    are exactly the multiples of 10 up to 80 (epoch ends alone would be 20, 40, 60, 80)."""
    assert _steps_on_disk(knob_run[0]) == list(range(10, 81, 10))


def test_keep_best_false_keeps_only_the_latest_even_when_the_best_is_older(knob_run, tmp_path, make_config):
    """A copy resumed for a 5th epoch with keep=1, keep_best=False and a learning rate (50) that
    wrecks the model: the best test accuracy stays at an earlier step, yet the only checkpoint
    left is the latest one (keep_best=True would also keep the best step)."""
    workdir = tmp_path / "run"
    shutil.copytree(knob_run[0], workdir)
    config = make_config(**{**KNOBS, "num_epochs": 5, "checkpoint.keep": 1, "checkpoint.keep_best": False, "optimizer.learning_rate": 50.0})
    summary = train.fit(config, workdir, console=QUIET)
    rows = _rows(workdir)
    assert rows[-1]["step"] == 100 and rows[-1]["test_accuracy"] is not None
    best = max((r for r in rows if r["test_accuracy"] is not None), key=lambda r: r["test_accuracy"])
    assert best["test_accuracy"] > rows[-1]["test_accuracy"] + 0.3 and best["step"] < 100  # the best is older
    assert summary["best_step"] == best["step"]
    assert _steps_on_disk(workdir) == [100]
