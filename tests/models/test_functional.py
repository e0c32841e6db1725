"""The functional API and the Linen bridge against independent computations.

- gradients under ``jax.jit(jax.grad(...))`` equal the stateful NNX route (``nnx.grad`` on a
  module built from the same key) and, for the classifier (the only parameters the loss is smooth
  in: everything upstream goes through a Heaviside), central finite differences;
- BatchNorm running statistics move in training mode exactly as the stateful module's do, and not
  at all in evaluation mode;
- ``jax.vmap`` over inputs and over initialisation keys equals a Python loop;
- through ``models.to_linen`` every parameter sits in ``params`` and changes after one
  ``optax.sgd`` step on ``variables['params']`` (Flax's own bridge leaves 92,160 of the 98,030
  of this 8x8-input net in a ``BinaryParam`` collection), with the gradients of the NNX module.

Planted bugs this caught (in a copy of the library): ``apply`` returning the input state in
training mode; ``apply`` using the training graph in evaluation mode; ``ParamsToLinen`` filing
only exact ``nnx.Param`` (not subclasses) under ``params``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import random_inputs  # tests/ is on sys.path (rootdir conftest)
from flax import nnx

from bsnn_jax import models

KW = dict(variant="agmm", timesteps=2, input_shape=(8, 8, 1), num_classes=10)


def xent(logits, y):
    return optax.softmax_cross_entropy_with_integer_labels(logits.mean(0), y).mean()


@pytest.fixture(scope="module")
def setup():
    fn = models.functional("small_cnn", **KW)
    x = random_inputs.uniform(1, (4, 8, 8, 1), 0.0, 2.0)
    y = jnp.arange(4) % 10
    params, state = fn.init(jax.random.key(0), x)

    def loss(p, s, x, y):
        logits, s = fn.apply(p, s, x, train=True)
        return xent(logits, y), s

    value_grad = jax.jit(jax.value_and_grad(loss, has_aux=True))
    (value, new_state), grads = value_grad(params, state, x, y)
    return dict(fn=fn, x=x, y=y, params=params, state=state, loss=jax.jit(loss), value=value, grads=grads, new_state=new_state)


def test_jit_grad_equals_the_stateful_nnx_route(setup):
    model = models.create("small_cnn", **KW, rngs=nnx.Rngs(jax.random.key(0)))
    # nnx.jit: one compiled program instead of op-by-op dispatch (~25 s here); still the stateful
    # route, which writes the new BN statistics into ``model``
    value, grads = nnx.jit(nnx.value_and_grad(lambda m: xent(m(setup["x"]), setup["y"])))(model)
    assert float(setup["value"]) == pytest.approx(float(value), rel=1e-6)
    ours, ref = jax.tree.leaves(setup["grads"]), jax.tree.leaves(nnx.as_pure(grads))
    assert len(ours) == len(ref) == 13
    for a, b in zip(ours, ref, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    # the new BN statistics are those the stateful module wrote into itself
    for a, b in zip(jax.tree.leaves(setup["new_state"]), jax.tree.leaves(nnx.as_pure(nnx.state(model, nnx.BatchStat))), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_classifier_gradient_matches_central_differences(setup):
    params, eps = setup["params"], 1e-2
    flat = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(params)}
    grads = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(setup["grads"])}
    rng = np.random.default_rng(0)
    for name in ("['fc']['kernel']", "['fc']['bias']"):
        for index in [tuple(rng.integers(0, n) for n in flat[name].shape) for _ in range(3)]:

            def at(delta, name=name, index=index):
                moved = jax.tree_util.tree_map_with_path(
                    lambda k, v: v.at[index].add(delta) if jax.tree_util.keystr(k) == name else v, params
                )
                return float(setup["loss"](moved, setup["state"], setup["x"], setup["y"])[0])

            fd = (at(eps) - at(-eps)) / (2 * eps)
            assert float(grads[name][index]) == pytest.approx(fd, rel=2e-2, abs=1e-5), (name, index)
    assert float(jnp.abs(grads["['fc']['kernel']"]).sum()) > 0


def test_state_moves_in_training_mode_only(setup):
    fn, params, state, x = setup["fn"], setup["params"], setup["state"], setup["x"]
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), state, setup["new_state"])
    assert all(jax.tree.leaves(changed)) and len(jax.tree.leaves(changed)) == 6
    logits, same = jax.jit(lambda p, s, x: fn.apply(p, s, x, train=False))(params, state, x)
    assert same is state or all(bool(jnp.all(a == b)) for a, b in zip(jax.tree.leaves(same), jax.tree.leaves(state), strict=True))
    # evaluation mode normalises with the running statistics (initially mean 0, var 1): the
    # stateful module in eval mode gives the same logits, its training mode other ones
    model = models.create("small_cnn", **KW, rngs=nnx.Rngs(jax.random.key(0)))
    model.eval()
    np.testing.assert_allclose(logits, model(x), rtol=1e-5, atol=1e-6)
    model.train()
    assert not np.allclose(logits, model(x))


def test_vmap_over_inputs_and_keys(setup):
    fn, params, state, x = setup["fn"], setup["params"], setup["state"], setup["x"]
    xs = jnp.stack([x, 0.5 * x, x[::-1]])
    # Both sides jitted (one program each instead of op-by-op dispatch, ~20 s here): vmap
    # against the loop of single calls, as before.
    apply = lambda x: fn.apply(params, state, x, train=False)[0]  # noqa: E731
    batched, single = jax.jit(jax.vmap(apply))(xs), jax.jit(apply)
    for i in range(3):
        np.testing.assert_allclose(batched[i], single(xs[i]), rtol=1e-5, atol=1e-6)
    keys = jax.random.split(jax.random.key(3), 2)
    ensemble, _ = jax.jit(jax.vmap(fn.init, in_axes=(0, None)))(keys, x)
    init = jax.jit(fn.init)
    for i in range(2):
        one, _ = init(keys[i], x)
        for a, b in zip(jax.tree.leaves(ensemble), jax.tree.leaves(one), strict=True):
            np.testing.assert_array_equal(a[i], b)


def test_a_module_and_a_builder_of_your_own():
    class Net(nnx.Module):
        def __init__(self, rngs):
            self.fc = nnx.Linear(3, 2, rngs=rngs)
            self.drop = nnx.Dropout(0.5, rngs=rngs)

        def __call__(self, x):
            return self.drop(self.fc(x))

    fn = models.functional(Net)
    x = jnp.ones((4, 3))
    params, state = fn.init(jax.random.key(0), x)
    a = fn.apply(params, state, x, train=True, rng=jax.random.key(1))[0]
    b = fn.apply(params, state, x, train=True, rng=jax.random.key(2))[0]
    c = fn.apply(params, state, x, train=True, rng=jax.random.key(1))[0]
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, b)
    # dropout is off in evaluation mode: x @ W + b by hand
    w, bias = params["fc"]["kernel"], params["fc"]["bias"]
    np.testing.assert_allclose(fn.apply(params, state, x, train=False)[0], x @ w + bias, rtol=1e-6)
    built = Net(nnx.Rngs(5))
    from_module = models.functional(built).init(None, x)[0]
    np.testing.assert_array_equal(from_module["fc"]["kernel"], built.fc.kernel[...])


def test_bad_input_and_arguments_are_clear_errors(setup):
    with pytest.raises(models.ModelInputError, match="input_shape"):
        setup["fn"].init(jax.random.key(0), jnp.ones((2, 9, 8, 1)))
    with pytest.raises(TypeError, match="model given by name"):
        models.functional(nnx.Linear(2, 2, rngs=nnx.Rngs(0)), variant="agmm")


def test_linen_bridge_trains_every_parameter(setup):
    x, y = setup["x"], setup["y"]
    flax_bridge = nnx.bridge.to_linen(models.create, "small_cnn", **KW).init(jax.random.key(0), x)
    assert sum(a.size for a in jax.tree.leaves(flax_bridge["BinaryParam"])) == 92160  # the finding

    net = models.to_linen("small_cnn", **KW)
    variables = net.init(jax.random.key(0), x)
    assert sorted(variables) == ["batch_stats", "params"]
    assert sum(a.size for a in jax.tree.leaves(variables["params"])) == 98030

    def loss(p):
        logits, updates = net.apply({**variables, "params": p}, x, train=True, mutable=["batch_stats"])
        return xent(logits, y), updates

    grads, updates = jax.jit(jax.grad(loss, has_aux=True))(variables["params"])
    tx = optax.sgd(0.1)
    step, _ = tx.update(grads, tx.init(variables["params"]))
    new = optax.apply_updates(variables["params"], step)
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), variables["params"], new)
    assert len(jax.tree.leaves(changed)) == 13 and all(jax.tree.leaves(changed))
    # the same gradients as the NNX module holding these arrays
    model = models.create("small_cnn", **KW, rngs=0)
    nnx.update(model, nnx.State(variables["params"]["net"]), nnx.State(variables["batch_stats"]["net"]))
    ref = nnx.jit(nnx.grad(lambda m: xent(m(x), y)))(model)  # jitted: op-by-op dispatch took ~10 s
    for a, b in zip(jax.tree.leaves(grads["net"]), jax.tree.leaves(nnx.as_pure(ref)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    # the new kernels are read back into the binary layers: other logits, same as the NNX module's
    nnx.update(model, nnx.State(new["net"]))
    model.eval()
    evaluated = net.apply({**variables, "params": new}, x, train=False)
    np.testing.assert_allclose(evaluated, model(x), rtol=1e-5, atol=1e-6)
    assert any(jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.any(a != b)), updates["batch_stats"], variables["batch_stats"])))
