"""Routing binary kernels to flip optimizers, the time step through the partition, signing."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import random_inputs  # tests/ is on sys.path (rootdir conftest)
from flax import nnx

from bsnn_jax.nn import BatchNorm, BinaryConv, BinaryLinear, BinaryParam, latent_free
from bsnn_jax.optim import binary_labels, binary_partition, fp_sgd, sign_binary_kernels, sign_kernels, t_bso
from bsnn_jax.train.state import eval_view


class Net(nnx.Module):
    """FP first conv, binary conv, BN, binary and FP linear layers (in a list)."""

    def __init__(self, rngs):
        self.stem = BinaryConv(2, 4, binary=False, use_bias=True, rngs=rngs)
        self.conv = BinaryConv(4, 4, rngs=rngs)
        self.bn = BatchNorm(4, rngs=rngs)
        self.head = nnx.List([BinaryLinear(4, 6, binary=True, rngs=rngs), BinaryLinear(6, 3, rngs=rngs)])

    def __call__(self, x):
        y = self.bn(self.conv(self.stem(x))).mean((2, 3))
        return self.head[1](jax.nn.relu(self.head[0](y)))


BINARY_PATHS = {("conv", "kernel"), ("head", 0, "kernel")}


def flat_labels(labels):
    keys = lambda p: tuple(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))) for k in p)  # noqa: E731
    return {keys(p): label for p, label in jax.tree_util.tree_leaves_with_path(labels)}


def test_labels_from_a_model_fit_variable_pure_and_dict_trees():
    model = Net(nnx.Rngs(0))
    labels = binary_labels(model)
    params = nnx.state(model, nnx.Param)
    for tree in (params, nnx.as_pure(params), nnx.to_pure_dict(params)):
        got = flat_labels(labels(tree))
        assert {p for p, label in got.items() if label == "binary"} == BINARY_PATHS
        assert len(got) == 9  # stem kernel+bias, conv kernel, bn scale+bias, 2 x (linear kernel+bias)
    # the same labels from the State of Variables and from a mask of bools
    mask = jax.tree.map(lambda v: isinstance(v, BinaryParam), params, is_leaf=lambda x: isinstance(x, nnx.Variable))
    for source in (params, nnx.to_pure_dict(mask)):
        assert flat_labels(binary_labels(source)(nnx.as_pure(params))) == flat_labels(labels(nnx.as_pure(params)))


def test_label_errors():
    with pytest.raises(ValueError, match="no binary kernels"):
        binary_labels({"w": False})
    with pytest.raises(TypeError, match="pytree of bools"):
        binary_labels({"w": jnp.ones(3)})
    with pytest.raises(ValueError, match="not in the parameter tree"):
        binary_labels({"conv": True})({"fc": jnp.ones(3)})


def test_prefix_mask_marks_a_whole_subtree():
    labels = binary_labels({"block": True, "fc": False})({"block": {"a": 1.0, "b": 2.0}, "fc": 3.0})
    assert labels == {"block": {"a": "binary", "b": "binary"}, "fc": "fp"}


def test_partition_routes_and_the_time_step_reaches_t_bso():
    params = {"conv": jnp.array([[1.0, -1.0], [-1.0, 1.0]]), "bias": jnp.array([0.5, 0.5])}
    tx = binary_partition(
        {"conv": True, "bias": False},
        binary=t_bso(timesteps=3, threshold=0.5, beta1=0.5, beta2=0.5, eps=0.0),
        fp=optax.sgd(0.1),
    )
    state = tx.init(params)
    grads = {"conv": jnp.array([[0.8, 0.8], [0.0, 0.0]]), "bias": jnp.array([1.0, -2.0])}
    updates, state = jax.jit(tx.update)(grads, state, params, t=jnp.int32(2))
    # T-BSO: M = G / 2, mean(G^2) = 0.32 -> v[2] = 0.16, threshold 0.5 * 0.4 = 0.2:
    # W M = [[0.4, -0.4], [0, 0]] -> only [0, 0] flips. SGD: -0.1 g.
    np.testing.assert_array_equal(updates["conv"], [[-2, 0], [0, 0]])
    np.testing.assert_allclose(updates["bias"], [-0.1, 0.2], rtol=1e-6)
    inner = state.inner_states["binary"].inner_state
    np.testing.assert_allclose(inner.second_moment["conv"], [0, 0, 0.16], rtol=1e-6)
    assert isinstance(inner.momentum["bias"], optax.MaskedNode)  # no state for FP leaves
    with pytest.raises(ValueError, match="time step"):
        tx.update(grads, state, params)


def test_nnx_optimizer_online_steps_keep_kernels_binary_and_train_the_rest():
    T = 2
    model = Net(nnx.Rngs(1))
    with pytest.raises(ValueError, match="not binary"):
        nnx.Optimizer(model, binary_partition(model, binary=t_bso(T), fp=fp_sgd(total_steps=8)), wrt=nnx.Param)
    sign_binary_kernels(model)
    before = jax.tree.map(np.asarray, nnx.as_pure(nnx.state(model, nnx.Param)))
    tx = binary_partition(model, binary=t_bso(T, threshold=1e-3), fp=fp_sgd(0.1, total_steps=8))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    x = random_inputs.normal(0, (T, 4, 6, 6, 2))
    y = jnp.array([0, 1, 2, 0])

    @nnx.jit
    def step(model, optimizer, x_t, t):
        def loss_fn(model):
            logits = model(x_t[None])[0]
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        optimizer.update(model, nnx.grad(loss_fn)(model), t=t)

    for _ in range(2):  # two minibatches, one update per time step
        for t in range(T):
            step(model, optimizer, x[t], jnp.int32(t))

    after = nnx.as_pure(nnx.state(model, nnx.Param))
    for path in BINARY_PATHS:
        w = after
        for key in path:
            w = w[key]
        np.testing.assert_array_equal(np.abs(w), 1.0)
    assert (np.asarray(after["conv"]["kernel"]) != before["conv"]["kernel"]).any()
    assert not np.allclose(after["stem"]["kernel"], before["stem"]["kernel"])  # FP trained by SGD
    inner = optimizer.opt_state.inner_states["binary"].inner_state
    assert int(inner.count[...]) == 2 * T
    v = np.asarray(nnx.as_pure(inner.second_moment)["conv"]["kernel"])
    assert v.shape == (T,) and (v > 0).all()  # each time step's entry was updated


def test_sign_binary_kernels_in_place_and_functional():
    model = Net(nnx.Rngs(2))
    model.conv.kernel[...] = model.conv.kernel[...].at[0, 0, 0, 0].set(0.0)
    stem = np.asarray(model.stem.kernel[...])
    raw = np.asarray(model.conv.kernel[...])
    sign_binary_kernels(model)
    np.testing.assert_array_equal(model.conv.kernel[...], np.where(raw >= 0, 1.0, -1.0))
    assert float(model.conv.kernel[0, 0, 0, 0]) == 1.0  # sign(0) = +1
    np.testing.assert_array_equal(model.stem.kernel[...], stem)  # FP kernels untouched
    assert isinstance(model.conv.kernel, BinaryParam)

    params = {"k": jnp.array([-0.2, 0.0, 3.0]), "b": jnp.array([-0.2])}
    out = sign_kernels(params, {"k": True, "b": False})
    np.testing.assert_array_equal(out["k"], [-1, 1, 1])
    assert out["b"] is params["b"]
    np.testing.assert_array_equal(params["k"], np.float32([-0.2, 0.0, 3.0]))  # input unchanged


def test_latent_free_layers_take_the_plain_weight_gradient():
    """A latent-free +-1 kernel is a plain conv weight: forward unchanged, gradient dL/dW itself,
    not the STE and scale terms of a latent weight (AGMM Eq. 5)."""
    original = Net(nnx.Rngs(3))
    raw = np.asarray(original.conv.kernel[...])
    model = latent_free(original)
    assert model.conv.latent_free and model.head[0].latent_free and not model.stem.latent_free
    np.testing.assert_array_equal(model.conv.kernel[...], np.where(raw >= 0, 1.0, -1.0))
    # a copy: the model it came from keeps its latent weights and its mode
    assert not original.conv.latent_free and np.array_equal(original.conv.kernel[...], raw)
    x = random_inputs.normal(1, (2, 3, 6, 6, 2))

    def loss_and_kernel_grad(latent_free_layer, binary=True):
        model.conv.latent_free, model.conv.binary = latent_free_layer, binary
        graphdef, params, rest = nnx.split(eval_view(model), nnx.Param, ...)
        loss = lambda p: jnp.sum(nnx.merge(graphdef, p, rest)(x) ** 2)  # noqa: E731
        value, grads = jax.value_and_grad(loss)(params)
        return float(value), np.asarray(grads["conv"]["kernel"][...])

    free_loss, free_grad = loss_and_kernel_grad(True)
    plain_loss, plain_grad = loss_and_kernel_grad(False, binary=False)  # the kernel as an FP weight
    latent_loss, latent_grad = loss_and_kernel_grad(False)  # STE + per-channel scale gradient
    np.testing.assert_allclose([free_loss, latent_loss], plain_loss, rtol=1e-6)  # binarize(+-1) = itself
    np.testing.assert_allclose(free_grad, plain_grad, rtol=1e-5, atol=1e-6)
    assert not np.allclose(latent_grad, free_grad, rtol=1e-3)
