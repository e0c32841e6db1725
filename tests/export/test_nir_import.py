"""NIR import of graphs bsnn_jax did not write: hand-worked residual sums, Sinabs' N-MNIST CNN as
its ``to_nir`` writes it, every node type and field against the numpy interpreter of ``test_nir``,
the refusals, and that an imported binary net trains with the library's optimizers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import nir
import numpy as np
import pytest
from export.test_export_fold import TINY_RESNET  # tests/ is on sys.path (rootdir conftest)
from export.test_nir import run_graph
from flax import nnx

from bsnn_jax import models, optim
from bsnn_jax import nn as bsnn_nn
from bsnn_jax.export import nir as bnir
from bsnn_jax.export.nir_import import from_nir
from bsnn_jax.models.common import VARIANTS, NetOptions
from bsnn_jax.train.config import default_config
from bsnn_jax.train.setup import assemble_optimizer, make_step
from bsnn_jax.train.state import create_train_state


def _imported(graph, x_nir, steps, **kw):
    """The imported model's output on ``x_nir`` ([N, C, ...] or [T, N, C, ...], NIR layout), as numpy."""
    model = from_nir(graph, timesteps=steps, **kw).model
    static = x_nir.ndim == len(model.input_shape) + 1
    x = np.moveaxis(x_nir, 1 if static else 2, -1) if len(model.input_shape) > 1 else x_nir
    return np.asarray(nnx.jit(lambda m, x: m(x))(model, jnp.asarray(x, jnp.float32))), model


def test_two_node_residual_graph_by_hand():
    """input -> a (Affine) -> n (LIF), plus input -> n and a -> output: n reads a(x) + x, output = spikes + a(x).

    a(x) = [0.5 0; 0 1] [0.5, 0.25] + [0, 0.25] = [0.25, 0.5], so n's current is I = [0.75, 0.75].
    LIF at dt = 1, tau = 2: v <- v/2 + (v_leak + r I)/2 with r = [2, 2], v_leak = [0, 0.3]:
    neuron 0: v = 0.75, 1.125 (> 1: spike, reset), 0.75, 1.125 -> spikes 0 1 0 1;
    neuron 1: v = 0.9, 1.35 (< 1.4), 1.575 (spike), 0.9 -> spikes 0 0 1 0 (per-neuron v_leak and threshold).
    """
    nodes = {
        "input": nir.Input(input_type={"input": np.array([2])}),
        "a": nir.Affine(weight=np.array([[0.5, 0.0], [0.0, 1.0]], np.float32), bias=np.array([0.0, 0.25], np.float32)),
        "n": nir.LIF(
            tau=np.full(2, 2.0, np.float32),
            r=np.full(2, 2.0, np.float32),
            v_leak=np.array([0.0, 0.3], np.float32),
            v_threshold=np.array([1.0, 1.4], np.float32),
            v_reset=np.zeros(2, np.float32),
        ),
        "output": nir.Output(output_type={"output": np.array([2])}),
    }
    edges = [("input", "a"), ("a", "n"), ("input", "n"), ("n", "output"), ("a", "output")]
    graph = nir.NIRGraph(nodes=nodes, edges=edges)
    got, _ = _imported(graph, np.array([[0.5, 0.25]], np.float32), 4)
    want = np.array([[0.25, 0.5], [1.25, 0.5], [0.25, 1.5], [1.25, 0.5]])
    np.testing.assert_allclose(got[:, 0], want, atol=1e-6)


def sinabs_scnn_graph(rng):
    """The graph of Sinabs' ``scnn_mnist.nir`` (its tutorial N-MNIST CNN, exported by ``sinabs.nir.to_nir``) with
    random weights: 5x5 stride-2 and 3x3 convs without bias, IF neurons, 2x2 SumPool2d, Flatten, Linear; the
    convs carry no input_shape, as snnTorch's and Sinabs' exporters often write them."""

    def conv(o, i, k, stride, pad):
        w = rng.normal(0, 1.5 / np.sqrt(i * k * k), (o, i, k, k)).astype(np.float32)
        return nir.Conv2d(None, w, stride, pad, 1, 1, np.zeros(o, np.float32))

    def if_(shape):
        return nir.IF(r=np.ones(shape, np.float32), v_threshold=np.ones(shape, np.float32), v_reset=np.zeros(shape, np.float32))

    pool = lambda: nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))  # noqa: E731
    nodes = {
        "input": nir.Input(input_type={"input": np.array([2, 34, 34])}),
        "0": conv(16, 2, 5, 2, 1),
        "1": if_((16, 16, 16)),
        "2": conv(16, 16, 3, 1, 1),
        "3": if_((16, 16, 16)),
        "4": pool(),
        "5": conv(8, 16, 3, 1, 1),
        "6": if_((8, 8, 8)),
        "7": pool(),
        "8": nir.Flatten(input_type={"input": np.array([8, 4, 4])}, start_dim=0, end_dim=-1),
        "9": nir.Linear(weight=rng.normal(0, 0.3, (256, 128)).astype(np.float32)),
        "10": if_(256),
        "11": nir.Linear(weight=rng.normal(0, 0.3, (10, 256)).astype(np.float32)),
        "12": if_(10),
        "output": nir.Output(output_type={"output": np.array([10])}),
    }
    names = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(zip(names[:-1], names[1:], strict=True)))


def test_sinabs_scnn_mnist_graph_runs_as_nir_defines(tmp_path):
    """Through a file, on N-MNIST-like event frames [T, N, 2, 34, 34]: spikes of every IF layer and the output equal the interpreter's."""
    rng = np.random.default_rng(0)
    nir.write(tmp_path / "scnn.nir", sinabs_scnn_graph(rng))
    graph = nir.read(tmp_path / "scnn.nir")
    frames = (rng.random((3, 2, 2, 34, 34)) < 0.3).astype(np.float32)
    want, spikes = run_graph(graph, frames, 3)
    got, model = _imported(graph, frames, 3)
    np.testing.assert_array_equal(got, want)
    assert all(s.mean() > 0.01 for s in spikes.values()), "every IF layer fires"
    assert model.input_shape == (34, 34, 2) and model.node("0").stride == (2, 2)


def zoo_graph(rng):
    """Every other node and field: Conv2d with strides (2, 1), padding (1, 0), dilation (1, 2), groups 2; LIF with
    per-neuron r and v_leak; AvgPool2d 3x3 / 2 with padding 1; Scale; Threshold; Flatten; Affine; IF; and a 1-D
    branch-free tail is in ``zoo1d_graph``."""
    c = (6, 5, 5)
    per = lambda lo, hi: rng.uniform(lo, hi, c).astype(np.float32)  # noqa: E731
    nodes = {
        "input": nir.Input(input_type={"input": np.array([4, 9, 9])}),
        "conv": nir.Conv2d(None, rng.normal(0, 0.6, (6, 2, 3, 3)).astype(np.float32), (2, 1), (1, 0), (1, 2), 2, rng.normal(0.3, 0.2, 6)),
        "lif": nir.LIF(tau=np.full(c, 3.0), r=per(0.8, 1.5), v_leak=per(-0.1, 0.2), v_threshold=np.full(c, 0.5), v_reset=np.zeros(c)),
        "pool": nir.AvgPool2d(kernel_size=np.array([3, 3]), stride=np.array([2, 2]), padding=np.array([1, 1])),
        "scale": nir.Scale(scale=rng.uniform(0.5, 2.0, (6, 3, 3)).astype(np.float32)),
        "th": nir.Threshold(threshold=rng.uniform(0.1, 0.4, (6, 3, 3)).astype(np.float32)),
        "flat": nir.Flatten(input_type={"input": np.array([6, 3, 3])}, start_dim=0, end_dim=-1),
        "fc": nir.Affine(weight=rng.normal(0, 0.5, (7, 54)).astype(np.float32), bias=rng.normal(0, 0.3, 7).astype(np.float32)),
        "if": nir.IF(r=np.full(7, 2.0), v_threshold=np.linspace(0.5, 1.5, 7), v_reset=np.zeros(7)),
        "output": nir.Output(output_type={"output": np.array([7])}),
    }
    names = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(zip(names[:-1], names[1:], strict=True)), type_check=False)


def zoo1d_graph(rng):
    """Conv1d with padding "same" and dilation 2, LIF, Flatten, Linear."""
    nodes = {
        "input": nir.Input(input_type={"input": np.array([3, 10])}),
        "conv": nir.Conv1d(10, rng.normal(0, 0.8, (4, 3, 3)).astype(np.float32), 1, "same", 2, 1, rng.normal(0.2, 0.2, 4)),
        "lif": nir.LIF(tau=np.full((4, 10), 2.0), r=np.full((4, 10), 2.0), v_leak=np.zeros((4, 10)), v_threshold=np.full((4, 10), 0.7)),
        "flat": nir.Flatten(input_type={"input": np.array([4, 10])}, start_dim=0, end_dim=-1),
        "fc": nir.Linear(weight=rng.normal(0, 0.5, (3, 40)).astype(np.float32)),
        "output": nir.Output(output_type={"output": np.array([3])}),
    }
    names = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(zip(names[:-1], names[1:], strict=True)), type_check=False)


@pytest.mark.parametrize("build, shape", [(zoo_graph, (4, 9, 9)), (zoo1d_graph, (3, 10))])
def test_every_node_type_runs_as_nir_defines(build, shape):
    rng = np.random.default_rng(1)
    graph = build(rng)
    x = rng.normal(0.5, 1.0, (5, *shape)).astype(np.float32)
    want, spikes = run_graph(graph, x, 4)
    got, _ = _imported(graph, x, 4)
    np.testing.assert_allclose(got, want, atol=1e-4 * np.abs(want).max())
    assert all(0.02 < s.mean() < 0.98 for s in spikes.values()), "neurons both fire and stay silent"


def _lif(n, **fields):
    base = dict(tau=np.full(n, 2.0), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.ones(n), v_reset=np.zeros(n))
    return nir.LIF(**{**base, **fields})


def _chain(*middle, n=3):
    nodes = {"input": nir.Input(input_type={"input": np.array([n])})}
    nodes.update({f"m{i}": node for i, node in enumerate(middle)})
    nodes["output"] = nir.Output(output_type={"output": np.array([n])})
    names = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(zip(names[:-1], names[1:], strict=True)), type_check=False)


@pytest.mark.parametrize(
    "graph, words",
    [
        (lambda: _chain(_lif(3, tau=np.array([2.0, 3.0, 2.0]))), "m0.tau differs between neurons"),
        (lambda: _chain(_lif(3, v_reset=np.full(3, 0.1))), "m0.v_reset is not 0"),
        (lambda: _chain(nir.Delay(delay=np.ones(3))), "m0: NIR node Delay has no bsnn_jax layer"),
        (
            lambda: _chain(nir.Affine(weight=np.eye(3, 4, dtype=np.float32), bias=np.zeros(3, np.float32))),
            "m0: a Affine of 4 inputs reads shape",
        ),
    ],
)
def test_unsupported_graphs_are_refused_naming_the_node_and_field(graph, words):
    with pytest.raises(bnir.NIRExportError, match=words):
        from_nir(graph())


def test_recurrent_graph_is_refused():
    g = _chain(nir.Affine(weight=np.eye(3, dtype=np.float32), bias=np.zeros(3, np.float32)), _lif(3))
    g.edges.append(("m1", "m0"))
    with pytest.raises(bnir.NIRExportError, match="cycle through .*recurrent"):
        from_nir(g)


def test_partial_flatten_is_refused():
    g = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([2, 3, 3])}),
            "f": nir.Flatten(input_type={"input": np.array([2, 3, 3])}, start_dim=1, end_dim=-1),
            "output": nir.Output(output_type={"output": np.array([2, 9])}),
        },
        edges=[("input", "f"), ("f", "output")],
    )
    with pytest.raises(bnir.NIRExportError, match="f: Flatten start_dim=1"):
        from_nir(g)


def test_imported_binary_layers_train_like_the_families():
    """A binary ResNet (untrained: BN the identity) exported and imported: its binary kernels are +-1 BinaryParams with
    the magnitude in a gain, the latent-free view (BSO/T-BSO) computes the same logits, optax.partition labels exactly
    them "binary", and the loss has a gradient in each of them."""
    original = TINY_RESNET.build(
        input_shape=(4, 4, 3), num_classes=4, opts=NetOptions(VARIANTS["bsnn"], 2, time_fold=True), rngs=nnx.Rngs(0)
    )
    original.eval()
    model = from_nir(bnir.to_nir(original), timesteps=2).model
    x = 3 * np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype(np.float32)
    forward = nnx.jit(lambda m, x: m(x))
    free = bsnn_nn.latent_free(model)
    np.testing.assert_allclose(np.asarray(forward(free, x)), np.asarray(forward(model, x)), atol=1e-5)
    leaves = jax.tree.leaves(nnx.state(model, bsnn_nn.BinaryParam))
    assert len(leaves) == 3 and all(set(np.unique(np.asarray(k))) == {-1.0, 1.0} for k in leaves)
    labels = optim.binary_labels(free)(nnx.state(free, nnx.Param))
    assert sum(v == "binary" for v in jax.tree.leaves(labels)) == 3

    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    loss = lambda p: jnp.mean(nnx.merge(graphdef, p, rest)(x) ** 2)  # noqa: E731
    grads = jax.jit(jax.grad(loss))(params)
    binary_grads = jax.tree.leaves(nnx.state(nnx.merge(graphdef, grads, rest), bsnn_nn.BinaryParam))
    assert len(binary_grads) == 3 and all(np.isfinite(np.asarray(g)).all() and np.abs(np.asarray(g)).sum() > 0 for g in binary_grads)


def test_forced_bsnn_binarizes_an_fp_graph_but_the_readout():
    model = models.create("small_cnn", variant="fp", timesteps=2, input_shape=(8, 8, 1))
    model.eval()
    net = from_nir(bnir.to_nir(model), variant="bsnn").model
    assert net.binary_nodes() == ["units.1", "units.2"]  # not the first conv (real input), not fc (the readout)
    w = np.asarray(model.units[1].conv.kernel[...])
    np.testing.assert_allclose(np.asarray(net.node("units.1").gain[...]), np.abs(w).mean(axis=(0, 1, 2)), rtol=1e-5)


def test_unknown_model_part_is_refused_by_name():
    """A part the exporter does not map (an extra module) is named, not silently dropped."""
    model = nnx.eval_shape(lambda: models.create("mlp", variant="bsnn", timesteps=2, input_shape=(6,), num_classes=3))
    model.gate = nnx.Linear(256, 256, rngs=nnx.Rngs(0))
    with pytest.raises(bnir.NIRExportError, match=r"parts the NIR export does not know: \['gate'\]"):
        bnir.to_nir(model)


@pytest.mark.parametrize("mode, rule", [("bptt", "bso"), ("online", "t_bso")])
def test_imported_binary_net_fine_tunes_with_bso(mode, rule):
    """The library's optimizer assembly on an imported net: BSO (BPTT) / T-BSO (online, one time step per call,
    nn.online) flips its +-1 kernels (they stay +-1), and SGD trains the gains, biases and the rest."""
    c = default_config()
    c.model.timesteps, c.schedule.name, c.train.mode = 2, "constant", mode
    c.optimizer.binary, c.optimizer.flip.threshold, c.optimizer.momentum, c.optimizer.weight_decay = rule, 1e-9, 0.0, 0.0
    original = TINY_RESNET.build(
        input_shape=(4, 4, 3), num_classes=4, opts=NetOptions(VARIANTS["bsnn"], 2, time_fold=True), rngs=nnx.Rngs(0)
    )
    original.eval()
    setup = assemble_optimizer(c, from_nir(bnir.to_nir(original), timesteps=2).model, steps_per_epoch=3)
    defs, state = create_train_state(setup.model, setup.tx, seed=0)
    step = make_step(c, defs, setup.tx)
    rng = np.random.default_rng(0)
    before = jax.device_get(state.params)
    for _ in range(3):
        batch = {"image": 3 * rng.normal(size=(8, 4, 4, 3)).astype(np.float32), "label": rng.integers(0, 4, 8).astype(np.int32)}
        state, metrics = step(state, batch)
        assert np.isfinite(float(metrics["loss"]))
    after, labels = jax.device_get(state.params), optim.binary_labels(setup.model)(before)
    flips = [
        np.mean(a != b)
        for a, b, k in zip(jax.tree.leaves(after), jax.tree.leaves(before), jax.tree.leaves(labels), strict=True)
        if k == "binary"
    ]
    assert len(flips) == 3 and max(flips) > 0  # the flip rule changed signs ...
    for a, k in zip(jax.tree.leaves(after), jax.tree.leaves(labels), strict=True):
        assert k != "binary" or set(np.unique(a)) <= {-1.0, 1.0}  # ... and left +-1 kernels
    assert any(
        k == "fp" and not np.array_equal(a, b)
        for a, b, k in zip(jax.tree.leaves(after), jax.tree.leaves(before), jax.tree.leaves(labels), strict=True)
    )
