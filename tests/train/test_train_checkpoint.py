"""RunCheckpoints on its own: keep-last-N plus the best by test accuracy, exact round trip of
arrays and metadata, and the fingerprint check."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bsnn_jax.train.checkpoint import CheckpointError, RunCheckpoints, make_fingerprint

MODEL = {"name": "small_cnn", "variant": "agmm", "timesteps": 2}


def _state(value=0.0):
    return {
        "params": {"w": jnp.full((3, 2), value), "b": jnp.arange(2.0)},
        "step": jnp.int32(7),
        "rng": jax.random.key_data(jax.random.key(1)),
    }


def test_keeps_the_last_n_and_the_best(tmp_path):
    state = _state()
    with RunCheckpoints(tmp_path, fingerprint=make_fingerprint(MODEL, "digits", state), keep=2) as ckpt:
        accuracies = {10: 0.5, 20: 0.9, 30: 0.6, 40: 0.7, 50: 0.65}
        for step, acc in accuracies.items():
            ckpt.save(step, state, {"step": step}, metrics={"test_accuracy": acc})
            if step == 30:
                ckpt.save(35, state, {"step": 35})  # a periodic checkpoint, no metrics
        assert ckpt.all_steps() == [20, 40, 50]
        assert ckpt.best_step() == 20 and ckpt.latest_step() == 50


def test_round_trip_is_exact_and_checks_the_fingerprint(tmp_path):
    state = _state(1.5)
    fp = make_fingerprint(MODEL, "digits", state)
    with RunCheckpoints(tmp_path, fingerprint=fp) as ckpt:
        ckpt.save(3, state, {"data_iterator": {"next_index": 3}, "epoch_sums": {"loss": 1.25}})
        ckpt.save(3, _state(9.0), {})  # same step again: left as it is
    target = _state(0.0)
    with RunCheckpoints(tmp_path, fingerprint=fp) as ckpt:
        restored, meta = ckpt.restore(3, target)
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(state), strict=True):
        np.testing.assert_array_equal(a, b)
    assert meta["data_iterator"] == {"next_index": 3} and meta["epoch_sums"] == {"loss": 1.25}

    other_model = make_fingerprint({**MODEL, "variant": "bsnn"}, "digits", state)
    with (
        RunCheckpoints(tmp_path, fingerprint=other_model) as ckpt,
        pytest.raises(CheckpointError, match="model.variant 'agmm' there, 'bsnn' here"),
    ):
        ckpt.restore(3, target)
    other_data = make_fingerprint(MODEL, "fashion_mnist", state)
    with (
        RunCheckpoints(tmp_path, fingerprint=other_data) as ckpt,
        pytest.raises(CheckpointError, match="dataset 'digits' there, 'fashion_mnist' here"),
    ):
        ckpt.restore(3, target)
    bigger = {**state, "params": {"w": jnp.zeros((4, 2)), "b": jnp.arange(2.0)}}
    with (
        RunCheckpoints(tmp_path, fingerprint=make_fingerprint(MODEL, "digits", bigger)) as ckpt,
        pytest.raises(CheckpointError, match=r"saved arrays differ \(1 of them, e.g. \['params'\]\['w'\]: 3x2 .* there, 4x2 .* here"),
    ):
        ckpt.restore(3, bigger)


def test_int8_kernels_on_disk_exact_on_restore_and_latent_values_refused(tmp_path):
    import orbax.checkpoint as ocp

    from bsnn_jax.optim import binary_labels
    from bsnn_jax.train.checkpoint import Int8Kernels
    from bsnn_jax.train.state import TrainState

    def state(w):
        params = {"w": jnp.asarray(w, jnp.float32), "b": jnp.array([0.25, -3.0])}
        return TrainState(
            step=jnp.int32(4), params=params, model_state={}, opt_state={"m": jnp.full((2, 2), 0.5)}, rng=jnp.zeros(2, jnp.uint32)
        )

    codec = Int8Kernels(binary_labels({"w": True, "b": False}))
    good = state([[1.0, -1.0], [-1.0, 1.0]])
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), good)
    fp = make_fingerprint(MODEL, "digits", codec.encode(abstract))
    with RunCheckpoints(tmp_path, fingerprint=fp, codec=codec) as ckpt:
        ckpt.save(1, good, {})
        with pytest.raises(CheckpointError, match="not \\+-1"):
            ckpt.save(2, state([[0.7, -1.0], [-1.0, 1.0]]), {})  # a latent value is not rounded away
        assert ckpt.all_steps() == [1]
        restored, _ = ckpt.restore(1, good)
    saved = ocp.StandardCheckpointer().metadata(tmp_path / "1" / "state")
    tree = getattr(saved, "item_metadata", saved)
    tree = getattr(tree, "tree", tree)
    assert tree["params"]["w"].dtype == np.int8 and tree["params"]["b"].dtype == np.float32
    assert restored.params["w"].dtype == jnp.float32
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(good), strict=True):
        np.testing.assert_array_equal(a, b)
    # a float32 (latent-weight) checkpoint of the same run shape does not pass for an int8 one
    assert fp["state_digest"] != make_fingerprint(MODEL, "digits", abstract)["state_digest"]
