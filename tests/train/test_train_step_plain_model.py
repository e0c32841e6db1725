"""The BPTT step trains a model with no binarizable layer at all (the GRU/LSTM baselines of experiments.seq_fashion)."""

import math

import jax
import numpy as np
import optax
from flax import nnx

from bsnn_jax.metrics import StepFlipRatio, flip_ratio
from bsnn_jax.train.state import create_train_state
from bsnn_jax.train.step import make_train_step


class Readout(nnx.Module):
    def __init__(self, rngs):
        self.fc = nnx.Linear(4, 3, rngs=rngs)

    def __call__(self, x):  # [T, B, 1, 1, 4] -> [T, B, 3]
        return self.fc(x.reshape(x.shape[:2] + (-1,)))


def test_step_without_binary_kernels_updates_by_sgd():
    model = Readout(nnx.Rngs(0))
    defs, state = create_train_state(model, optax.sgd(0.5))
    rng = np.random.default_rng(0)
    batch = {"image": rng.normal(size=(8, 2, 1, 1, 4)).astype(np.float32), "label": rng.integers(0, 3, 8).astype(np.int32)}
    new, metrics = make_train_step(defs, optax.sgd(0.5), loss="mean_logits", donate=False)(state, batch)

    def loss(params):
        logits = defs.model(params, state.model_state)(jax.numpy.swapaxes(batch["image"], 0, 1)).mean(0)
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()

    grads = jax.grad(loss)(state.params)
    for new_leaf, old, g in zip(jax.tree.leaves(new.params), jax.tree.leaves(state.params), jax.tree.leaves(grads), strict=True):
        np.testing.assert_allclose(new_leaf, old - 0.5 * g, rtol=1e-5, atol=1e-6)
    assert float(metrics["loss"]) > 0


def test_flip_ratios_without_binary_kernels_are_nan():
    assert math.isnan(flip_ratio({}, {}))
    ratio = StepFlipRatio()
    ratio.update(0, 0)
    assert math.isnan(ratio.result()) and ratio.steps == 0
